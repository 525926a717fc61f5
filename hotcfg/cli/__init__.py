"""The hotcfg command: check a config file, inspect and wait on a running service.

Every subcommand's --help says what it does, gives an example and lists its
exit codes; main() returns the exit code (0 ok, 1 the answer is "no", 2
usage, or no running service).

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

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the hotcfg command with ``argv`` (default: ``sys.argv[1:]``) and
    return its exit code; the entry point ``hotcfg`` and ``python -m hotcfg``.
    """
    from .parser import main as run  # the commands load only when one runs

    return run(argv)
