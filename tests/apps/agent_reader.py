"""An app process that only reads what a ``hotcfg agent`` publishes
(``HOTCFG_PEERS=read``), for tests/process/test_agent.py and
benchmarks/agent_wakeup.py.

Usage: python -m tests.apps.agent_reader OUT INDEX

It writes ``OUT/init-INDEX`` (the generation and ``value`` it started on),
appends every switch its ``on_change`` callback sees to ``OUT/gen-INDEX``,
serves ``GET /`` (``"<generation> <value>"``) on a free 127.0.0.1 port, and
writes ``OUT/ready-INDEX`` (``"<pid> <port>"``, the pid as its own PID
namespace sees it) once all that runs. Between requests it is idle: only the
applier, woken by the agent, switches it. With ``AGENT_READER_NO_POLL=1``
the applier's safety poll is off, so nothing but a wake-up switches it; with
``AGENT_READER_NO_SOCKET=1`` it binds no wake-up socket, so only that poll
does (benchmarks/agent_wakeup.py).
"""

import http.server
import os
import sys
import time

import hotcfg
from hotcfg import _runtime


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        now = hotcfg.snapshot()
        body = f"{now.generation} {now['value']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def main():
    out, index = sys.argv[1], sys.argv[2]
    if os.environ.get("AGENT_READER_NO_POLL"):
        _runtime.PEER_POLL_S = 3600.0
    if os.environ.get("AGENT_READER_NO_SOCKET"):
        # As if the socket could not be bound: the safety poll alone.
        def refused(path):
            raise OSError(f"{path}: refused for this run")

        _runtime.WakeSocket = refused

    def changed(old, new):
        with open(os.path.join(out, f"gen-{index}"), "a") as f:
            f.write(f"{new.generation} {new['value']}\n")
        with open(os.path.join(out, f"at-{index}"), "a") as f:
            f.write(f"{new.generation} {time.time()!r}\n")

    hotcfg.on_change()(changed)
    now = hotcfg.snapshot()
    with open(os.path.join(out, f"init-{index}"), "a") as f:
        f.write(f"{now.generation} {now['value']}\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ready = os.path.join(out, f"ready-{index}")
    with open(ready + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {server.server_address[1]}\n")
    os.replace(ready + ".tmp", ready)
    server.serve_forever()


if __name__ == "__main__":
    main()
