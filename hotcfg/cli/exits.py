"""The hotcfg command's exit codes, one meaning each (docs/reference/exit-codes.md).

Scripts branch on them: 1 is each command's "no" (a file invalid, not
applied in time, differences found, a conflict), and what went wrong
around the command has its own code from ``sysexits.h``, so "no service
here" (69) is never taken for "etcd is down" (75) or "not allowed" (77).
2 is left to argparse's usage errors and the few checks of the arguments
it cannot make. Imports nothing of hotcfg: :func:`for_error` looks at the
classes' names, so that the errors' modules load only with the commands
that raise them.
"""

from __future__ import annotations

import os
import sys
from enum import IntEnum


class Exit(IntEnum):
    """What ``hotcfg`` returns (values from ``sysexits.h`` where it has one)."""

    OK = 0
    #: The command's answer is "no"; each command's --help says which "no".
    NO = 1
    #: The arguments (argparse; FILE with --from, several services and none picked).
    USAGE = 2
    #: EX_UNAVAILABLE: no running service found, or its master serves no
    #: control socket, or it exited meanwhile.
    NO_SERVICE = 69
    #: EX_TEMPFAIL: etcd, a URL or the master's control socket did not answer;
    #: trying again later may succeed.
    UNREACHABLE = 75
    #: EX_NOPERM: access refused (file modes or owners, etcd authentication
    #: or TLS).
    NO_PERMISSION = 77
    #: EX_CONFIG: a setting or file invalid where that is not the command's "no".
    CONFIG = 78
    #: 128 + SIGINT: interrupted (Ctrl-C).
    INTERRUPTED = 130
    #: 128 + SIGPIPE: the reader of the output went away (``hotcfg status | head``).
    BROKEN_PIPE = 141


class Stop(Exception):
    """Ends a command with ``code``; ``hotcfg.cli.parser.main`` prints the
    message (why) on stderr. For what several commands share, as "no
    running service found" (69) or "several, pick one" (2)."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def for_error(exc: BaseException) -> Exit:
    """The exit code of an error a command did not handle itself.

    A refused permission anywhere in the chain is 77; etcd or a URL that
    does not answer 75; a master that serves no control socket 69; the
    master's refusal (a generation not kept) 1; a control socket that did not
    answer in time 75; an invalid setting 78; a segment refused (another
    user's, open to others) 77, gone or unreadable 69.
    """
    if any(isinstance(e, PermissionError) for e in _chain(exc)):
        return Exit.NO_PERMISSION
    names = _names(exc)
    if "UnreachableError" in names:
        return Exit.UNREACHABLE
    if "ControlUnavailable" in names:
        return Exit.NO_SERVICE
    if "ControlDenied" in names:
        return Exit.NO_PERMISSION
    if "ControlRefused" in names:
        # Busy serving others: try again; anything else is the master's "no".
        return Exit.UNREACHABLE if str(exc).startswith("busy") else Exit.NO
    if "ControlError" in names:
        return Exit.UNREACHABLE
    if "ConfigError" in names:
        return Exit.CONFIG
    if "SegmentError" in names:
        # Gone meanwhile: no service; else refused to trust it (another
        # user's, or open to others).
        if any(isinstance(e, FileNotFoundError) for e in _chain(exc)):
            return Exit.NO_SERVICE
        return Exit.NO_PERMISSION
    if "CorruptSegmentError" in names:
        return Exit.NO_SERVICE
    return Exit.NO


def quiet_stdout() -> None:
    """After a ``BrokenPipeError`` (exit 141): point stdout at /dev/null, so
    that the interpreter's flush at exit does not fail again and print a
    traceback (Python's documented recipe for SIGPIPE)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # not a file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
