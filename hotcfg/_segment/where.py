"""Where a host's segments live and which files are segments: what
``hotcfg status`` needs to say "no service here" before it loads anything
that reads one.

Imports the standard library's ``os`` only (the temporary directory's
module when there is no ``/dev/shm``), so that the command starts as fast
as the interpreter; :mod:`.shm` and the settings take these from here.
"""

from __future__ import annotations

import os

SUFFIX = ".seg"


def default_segment_dir() -> str:
    """``/dev/shm/hotcfg-<uid>`` (RAM-backed), else the temp dir's equivalent."""
    if os.path.isdir("/dev/shm"):
        base = "/dev/shm"
    else:
        import tempfile  # loads random and shutil: only where it is needed

        base = tempfile.gettempdir()
    return os.path.join(base, f"hotcfg-{os.geteuid()}")


def list_segments(directory: str) -> list[str]:
    """Paths of the segments in ``directory``, newest first."""
    try:
        names = [n for n in os.listdir(directory) if n.endswith(SUFFIX)]
    except FileNotFoundError:
        return []
    paths = [os.path.join(directory, n) for n in names]
    return sorted(paths, key=lambda p: os.lstat(p).st_mtime, reverse=True)
