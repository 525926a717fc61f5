"""Which running service a command means: this host's segments, what each
says, and the one the selection options (``--dir``, ``--segment``,
``--name``, ``--pid``) pick.

Owns the selection shared by the commands that read a segment
(:mod:`.local`) and those that ask its master (:mod:`.control`). Reads
segments only: it must not import the other command modules, the control
socket or etcd. Finding no segment loads nothing more than
:mod:`.._segment.where`, so that ``hotcfg status`` with no service starts in
about the interpreter's time; reading one loads the segment's modules.
"""

from __future__ import annotations

import os
import time

from .._segment.where import default_segment_dir, list_segments
from .exits import Exit, Stop

TYPE_CHECKING = False  # not typing's: see hotcfg/__init__.py
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from .._segment.snapshot import Snapshot

NOT_RUNNING = "no running hotcfg service found (no live segment; see --dir)"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def segment_paths(args: argparse.Namespace) -> list[str]:
    """The segments the selection options name, newest first.

    ``--segment`` names one file; otherwise every segment of ``--dir``
    (default ``HOTCFG_SEGMENT_DIR``), narrowed by ``--name`` (the segment
    prefix, ``HOTCFG_NAME``) and ``--pid`` (the master's pid).
    """
    if args.segment:
        return [args.segment]
    # HOTCFG_SEGMENT_DIR as the settings read it (Settings.segment_dir),
    # without loading them: they import the parsers.
    directory = (
        args.dir or os.environ.get("HOTCFG_SEGMENT_DIR") or default_segment_dir()
    )
    paths = list_segments(directory)
    name = getattr(args, "name", None)
    if name:
        paths = [p for p in paths if os.path.basename(p).rsplit("-", 2)[0] == name]
    pid = getattr(args, "pid", None)
    if pid:
        paths = [
            p for p in paths if os.path.basename(p).split("-")[-2:-1] == [str(pid)]
        ]
    return paths


def describe(path: str) -> dict[str, Any]:
    """What ``status`` shows of one segment; times as seconds since the
    epoch (:mod:`.times` writes them)."""
    from .._segment import layout
    from .._segment.shm import SegmentView

    view = SegmentView.open(path)
    try:
        header = view.header()
        workers = layout.read_workers(view.buffer)
    finally:
        view.close()
    now = time.time()
    return {
        "segment": path,
        "name": os.path.basename(path).rsplit("-", 2)[0],
        "master_pid": header.writer_pid,
        "master_alive": alive(header.writer_pid),
        "generation": header.generation,
        "published_at": header.published_at,
        "source": header.source,
        "last_error": header.error,
        "last_error_at": header.error_at if header.error else None,
        "rejected_count": header.rejected_count,
        "validating": (
            {"validator": header.validating, "since": header.validating_since}
            if header.validating
            else None
        ),
        "workers": [
            {
                "pid": w.pid,
                "generation": w.generation,
                "applied_at": w.applied_at,
                "alive": alive(w.pid),
                # Behind the live generation since it was published.
                "behind_s": (
                    max(0.0, now - header.published_at)
                    if w.generation < header.generation
                    else None
                ),
            }
            for w in workers
        ],
    }


def one_live_service(args: argparse.Namespace) -> str:
    """The one running service the options select.

    Raises:
        Stop: none (exit 69), or several (2: pick one).
    """
    paths = segment_paths(args)  # PermissionError: not this user's (exit 77)
    live = [p for p in paths if describe(p)["master_alive"]]
    if len(live) == 1:
        return live[0]
    if not live:
        raise Stop(Exit.NO_SERVICE, NOT_RUNNING)
    raise Stop(
        Exit.USAGE,
        f"{len(live)} running services; pick one with --name, --pid or "
        "--segment (hotcfg status lists them)",
    )


def load_live(args: argparse.Namespace) -> Snapshot:
    """The live configuration of the one service the options select
    (:func:`one_live_service`'s ``Stop`` otherwise)."""
    from .._segment import payload as _payload
    from .._segment.shm import SegmentView

    path = args.segment or one_live_service(args)
    view = SegmentView.open(path)
    try:
        return _payload.decode(view.buffer)
    finally:
        view.close()


def when(ts: float) -> str:
    """A time in human output: local, ISO 8601 with its offset."""
    from .times import local

    return local(ts)
