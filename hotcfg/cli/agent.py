"""``hotcfg agent``: a publisher of its own, for apps whose processes must
not publish (``HOTCFG_PEERS=read``): a systemd unit beside the app's, or a
Kubernetes sidecar sharing the segment directory (a memory-backed
``emptyDir``) with the app's container.

It holds the service's publisher lock and publishes as a Gunicorn master
does, with the same operator surface: the control socket (``hotcfg
history``, ``diff``, ``rollback``), the history, the metrics
(``HOTCFG_METRICS``) and, for an etcd source, the fleet record. It runs until
SIGTERM or SIGINT, then stops cleanly (exit 0); the readers keep the
segment mapped and serve its last content until the next agent publishes.
SIGHUP reads the source again and publishes what it holds, even after a
rollback, as a Gunicorn master's HUP does (``systemctl reload``).

The publisher's modules are imported when the command runs (the CLI's
other commands must not pay for them).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType


def cmd_agent(args: argparse.Namespace) -> int:
    """Publish until SIGTERM or SIGINT (SIGHUP: read the source again);
    0 after a clean stop."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s hotcfg-agent[%(process)d] %(levelname)s %(message)s",
    )
    stop = threading.Event()
    reload = threading.Event()
    wake = threading.Event()  # either of the two: the main loop looks

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()
        wake.set()

    def reloading(signum: int, frame: FrameType | None) -> None:
        reload.set()
        wake.set()

    handlers = {signal.SIGTERM: stopping, signal.SIGINT: stopping}
    handlers[signal.SIGHUP] = reloading
    previous = {signum: signal.signal(signum, h) for signum, h in handlers.items()}
    from .. import _runtime

    log = logging.getLogger("hotcfg.agent")
    try:
        publisher = _runtime.run_agent(stop)
        if publisher is not None:
            log.info(
                "publishing %s into %s (generation %d)",
                publisher.settings.source,
                publisher.segment.path,
                publisher.generation,
            )
            while not stop.is_set():
                wake.wait(3600.0)
                wake.clear()
                if reload.is_set() and not stop.is_set():
                    reload.clear()
                    log.info("SIGHUP: reading %s again", publisher.settings.source)
                    # The watcher's thread reads (a validator may take long).
                    publisher.request_publish()
    finally:
        _runtime.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("stopped")
    return 0
