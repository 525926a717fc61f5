"""One WSGI app, three ways of following an etcd key in every Gunicorn worker.

``PEER`` picks the way; ``PEER_ETCD`` is the member's ``host:port``,
``PEER_KEY`` the key (a YAML document with a ``value``), ``PEER_RECORD``
the file each worker appends to when it applied a new value:

    hotcfg  the master follows the key (hotcfg's gunicorn_conf.py); each
            worker records from a ``hotcfg.on_change("value")`` callback,
            which runs once the worker has switched
    poll    every worker reads the key once a second (``/v3/kv/range`` on a
            connection kept open), and parses and applies it when its
            ``mod_revision`` changed: the Apollo / consul-template pattern
    watch   every worker holds its own watch (``/v3/watch``, opened at
            import, so after the fork), and applies each event

All three speak etcd's v3 JSON gateway, as hotcfg does. A record is one
line, ``<pid> <value> <CLOCK_MONOTONIC ns>``, written with one ``write()``
to a file opened with ``O_APPEND`` (whole lines, whatever the writers), so
the benchmark reads, for every worker, when it had the new value in hand.

GET / answers {"pid", "value"}.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import yaml

MODE = os.environ["PEER"]
RECORD = os.environ["PEER_RECORD"]
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_value: Any = None
_record_fd: int | None = None


def record(value: Any) -> None:
    """Say that this worker applied ``value``, and when."""
    global _record_fd
    now = time.monotonic_ns()
    if _record_fd is None:
        _record_fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_record_fd, f"{os.getpid()} {value} {now}\n".encode())


def _apply(raw: bytes) -> None:
    global _value
    try:
        loaded = yaml.load(raw, Loader=Loader)  # a safe loader
    except yaml.YAMLError:
        return  # keep the last good value
    if isinstance(loaded, dict):
        _value = loaded.get("value")
        record(_value)


def _gateway() -> tuple[str, int, str]:
    host, port = os.environ["PEER_ETCD"].rsplit(":", 1)
    key = base64.b64encode(os.environ["PEER_KEY"].encode()).decode()
    return host, int(port), key


def _read(conn: http.client.HTTPConnection, key: str) -> tuple[int, int, bytes]:
    """The key's mod_revision, the store's revision and the value."""
    conn.request("POST", "/v3/kv/range", json.dumps({"key": key}).encode())
    reply = json.loads(conn.getresponse().read())
    kvs = reply.get("kvs") or [{}]
    value = base64.b64decode(kvs[0].get("value", ""))
    return int(kvs[0].get("mod_revision", 0)), int(reply["header"]["revision"]), value


def _poll() -> None:
    host, port, key = _gateway()
    conn = http.client.HTTPConnection(host, port, timeout=5)
    seen = -1
    due = time.monotonic()
    while True:
        try:
            mod_revision, _, value = _read(conn, key)
            if mod_revision != seen:
                seen = mod_revision
                _apply(value)
        except (OSError, http.client.HTTPException, ValueError):
            conn.close()  # reconnects at the next request
        due += 1.0
        time.sleep(max(0.0, due - time.monotonic()))


def _watch() -> None:
    host, port, key = _gateway()
    while True:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            _, revision, value = _read(conn, key)
            _apply(value)
            request = {
                "create_request": {
                    "key": key,
                    "start_revision": revision + 1,
                    "progress_notify": True,
                }
            }
            conn.request("POST", "/v3/watch", json.dumps(request).encode())
            response = conn.getresponse()
            assert conn.sock is not None
            conn.sock.settimeout(None)  # a quiet key is not an error
            while line := response.readline():
                result = json.loads(line).get("result", {})
                events = result.get("events") or []
                if events and events[-1].get("type") != "DELETE":
                    _apply(base64.b64decode(events[-1]["kv"].get("value", "")))
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            conn.close()
        time.sleep(0.5)  # then read in full and watch again


if MODE == "hotcfg":
    import hotcfg

    @hotcfg.on_change("value")
    def _applied(old: Any, new: Any) -> None:
        record(new)

elif MODE in ("poll", "watch"):
    # Gunicorn imports the app in each worker (no --preload): one each.
    threading.Thread(
        target=_poll if MODE == "poll" else _watch, name=f"peer-{MODE}", daemon=True
    ).start()
else:
    raise SystemExit(f"unknown PEER {MODE!r}")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    value = hotcfg.get("value") if MODE == "hotcfg" else _value
    body = json.dumps({"pid": os.getpid(), "value": value})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]
