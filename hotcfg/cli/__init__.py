"""The hotcfg command: check a config file, inspect and wait on a running service.

Every subcommand's --help says what it does, gives an example and lists its
exit codes; main() returns the exit code (:mod:`.exits`: 0 ok, 1 the
answer is "no", 2 usage, 69 no running service, 75 unreachable, 77 access
refused, 78 invalid configuration, 130 interrupted, 141 broken pipe).

This package's own module is thin, so that importing one of its modules
(the pure :mod:`.fleet_view`) loads nothing else. The work is in:

- :mod:`.parser`: the arguments, each command's help, and dispatch;
- :mod:`.select`: which service on this host a command means;
- :mod:`.local`: ``validate``, and ``status``, ``get``, ``dump`` and
  ``wait``, which read the segment on this host;
- :mod:`.control`: ``history``, ``diff``, ``rollback`` and ``get --explain``,
  which ask the master through its control socket;
- :mod:`.etcd`: ``push`` and ``status --fleet``, which speak to etcd;
- :mod:`.fleet_view`: pure, the fleet's records to the lines printed.

The parser's module is not named ``main``: importing a submodule binds its
name on the package, and would hide this :func:`main`. Imports nothing of
hotcfg at import time.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see hotcfg/__init__.py
if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the hotcfg command with ``argv`` (default: ``sys.argv[1:]``) and
    return its exit code; the entry point ``hotcfg`` and ``python -m hotcfg``.

    ``hotcfg --version`` is answered before argparse loads (which takes
    longer than the interpreter's start); the parser says the same.
    """
    import sys

    if (sys.argv[1:] if argv is None else list(argv)) == ["--version"]:
        from .._version import __version__

        try:
            print(f"hotcfg {__version__}", flush=True)
        except BrokenPipeError:
            from .exits import Exit, quiet_stdout

            quiet_stdout()
            return Exit.BROKEN_PIPE
        return 0
    from .parser import main as run  # the commands load only when one runs

    return run(argv)
