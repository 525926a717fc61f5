"""One WSGI app, five ways of getting its config: hotcfg and what users do today.

``PEER`` picks the way, ``PEER_CONFIG`` names the YAML file:

    hotcfg   hotcfg.get(); the master watches and broadcasts
    hup      read once at import; a change needs ``kill -HUP`` of the master
    watch    every worker runs its own watchdog observer and re-parses
    stat     every request calls os.stat() and re-parses when it changed
    stat1s   os.stat() at most once a second
    none     no config at all (a baseline for memory)

GET / answers {"pid", "value", "parses"}, from ``app`` (plain WSGI) or
``flask_app`` (Flask, built only when asked for): ``parses`` counts how many
times this worker has parsed the file, so a run can show the work per change.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import yaml

MODE = os.environ["PEER"]
PATH = os.environ["PEER_CONFIG"]
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_config: dict[str, Any] = {}
_stamp: tuple[int, int, int] | None = None
_checked = 0.0
_parses = 0


def _parse() -> None:
    global _config, _parses
    try:
        with open(PATH, "rb") as f:
            loaded = yaml.load(f, Loader=Loader)  # a safe loader
    except (OSError, yaml.YAMLError):
        return  # keep the last good config, as hotcfg does
    if isinstance(loaded, dict):
        _config = loaded
        _parses += 1


def _stat_changed() -> bool:
    global _stamp
    try:
        st = os.stat(PATH)
    except OSError:
        return False
    stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
    changed = stamp != _stamp
    _stamp = stamp
    return changed


def _start_watching() -> None:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    name = os.path.basename(PATH)

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return  # our own reads; parsing on them would feed itself
            paths = {event.src_path, getattr(event, "dest_path", "")}
            if any(os.path.basename(str(p)) == name for p in paths):
                _parse()

    observer = Observer()
    observer.schedule(Handler(), os.path.dirname(PATH))
    observer.daemon = True
    observer.start()


def _value() -> Any:
    global _checked
    if MODE == "hotcfg":
        import hotcfg

        return hotcfg.get("value")
    if MODE == "none":
        return None
    if MODE == "stat" or (MODE == "stat1s" and time.monotonic() - _checked >= 1.0):
        _checked = time.monotonic()
        if _stat_changed():
            _parse()
    return _config.get("value")


if MODE not in ("hotcfg", "none"):
    _stat_changed()
    _parse()
if MODE == "watch":
    # Gunicorn imports the app in each worker (no --preload): one observer each.
    threading.Thread(target=_start_watching, daemon=True).start()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps({"pid": os.getpid(), "value": _value(), "parses": _parses})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]


def _flask_app() -> Any:
    """The same answer from a Flask app: what a reload has to import and build."""
    from flask import Flask, Response

    flask = Flask(__name__)

    @flask.get("/")
    def index() -> Response:
        body = json.dumps({"pid": os.getpid(), "value": _value(), "parses": _parses})
        return Response(body, mimetype="application/json")

    return flask


def __getattr__(name: str) -> Any:
    # Flask is imported only by the servers that serve it (memory baselines
    # stay plain WSGI).
    if name == "flask_app":
        globals()["flask_app"] = built = _flask_app()
        return built
    raise AttributeError(name)
