"""The hotcfg command's argument parser and dispatch: each subcommand's
options and help (what it does, an example, its exit codes), and
:func:`main`, which runs the one given and turns what went wrong into an
exit code (:mod:`.exits`).

The commands live by what they talk to: :mod:`.local` (this host's
segments), :mod:`.control` (the master's control socket) and :mod:`.etcd`.
They are named here as strings and imported only when one runs, so that
``hotcfg --help`` and ``hotcfg --version`` load argparse and nothing else,
and the command starts in about the interpreter's time
(``benchmarks/cli_startup.py``). Nothing imports this module but
``hotcfg.cli.main``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .exits import Exit, Stop, for_error, quiet_stdout

TYPE_CHECKING = False  # not typing's: see hotcfg/__init__.py
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

_HELP: dict[str, tuple[str, str, str, str]] = {
    # name: (one line, what it does, example, exit codes)
    "validate": (
        "check a config file as the master would",
        "Reads FILE and runs every check the master runs before publishing:\n"
        "parsing with limits, the shape of the document, the validator, the\n"
        "JSON Schema and the model given here or by HOTCFG_VALIDATOR,\n"
        "HOTCFG_SCHEMA and HOTCFG_MODEL, and encoding. Nothing is published.\n"
        "FILE may be layers ('base.yaml | local.yaml'); the HOTCFG_SET__*\n"
        "overrides of this environment go on top, and a line names them (or\n"
        "says there were none).",
        "hotcfg validate config.yaml --schema schema.json",
        "0 valid; 1 invalid (the reason names the file, the place and the\n"
        "rule, never the content); 78 a check given cannot be used (--schema,\n"
        "--validator, --model, a HOTCFG_* setting); 2 usage.",
    ),
    "status": (
        "show each service's generation, errors and workers",
        "For each service on this host: the master, the live generation and\n"
        "when it was published, the source, the last rejection, a validator\n"
        "running now, and every worker with the generation it applied, when,\n"
        "and for how long it has been behind the live generation.\n"
        "\n"
        "With --fleet etcd://HOST:PORT/KEY: every master on any host that\n"
        "follows KEY, from the records they keep in etcd under a lease: host,\n"
        "master pid, service, the etcd revision followed, what its live\n"
        "generation serves (revision: the key's content at that revision; or\n"
        "a rollback to generation G, the cache, or rejected revision R), the\n"
        "live generation, its workers (those behind as pid:generation) and\n"
        "the record's age; then which masters are behind the key's last\n"
        "revision or serve anything else, and why. A master that died drops\n"
        "out when its lease expires (HOTCFG_FLEET_TTL_MS), one that stopped\n"
        "at once. --fleet without a key reads the one HOTCFG_SOURCE follows\n"
        "(its first etcd layer when it has several).\n"
        "\n"
        "With --stale: the history, cache and lock files of services that no\n"
        "longer run (nobody holds their lock); hotcfg clean removes them.",
        "hotcfg status --name myapp --json\n"
        "  hotcfg status --fleet etcd://10.0.0.1:2379/app/config.yaml",
        "0 shown; 69 no service found (--json prints []); 77 access refused;\n"
        "with --fleet: 75 etcd unreachable, 77 access refused (authentication,\n"
        "TLS), 78 a HOTCFG_* setting invalid; 2 not an etcd key (or none, and\n"
        "HOTCFG_SOURCE follows none), or usage; with --stale as hotcfg clean.",
    ),
    "clean": (
        "remove the files of services that no longer run",
        "Removes the history, cache and lock files that services which no\n"
        "longer run left in the segment directory (--dir, default\n"
        "HOTCFG_SEGMENT_DIR): those whose lock no live master holds. Each\n"
        "service's lock is taken before its files are removed, so a master\n"
        "starting meanwhile never loses its files; files of other users are\n"
        "left alone. --dry-run lists them only (as status --stale does).",
        "hotcfg clean --dry-run",
        "0 removed (or nothing to remove); 1 some files were left (named,\n"
        "with why); 77 the directory cannot be read (not yours); 69 it cannot\n"
        "be read otherwise; 2 usage.",
    ),
    "wait": (
        "wait until every live worker applied the source as it is now",
        "Asks the master to read its source now (a file, etcd, a URL; no\n"
        "debounce, no waiting for the next poll) and to publish it if it\n"
        "changed, then blocks until every live worker of the service has\n"
        "applied the generation that holds it, or until the timeout; then\n"
        "names the workers still behind, with their pid, generation and how\n"
        "long they have been behind. If the master refuses that content, it\n"
        "says why (the file, the place, the reason) and exits 1. For deploy\n"
        "scripts: edit the file, then wait. With --generation G it waits for\n"
        "G instead. A master that serves no control socket is not asked: a\n"
        "note says so and it waits for the live generation.",
        "hotcfg wait --timeout 10 && echo applied everywhere",
        "0 every live worker applied it; 1 the master refused the source's\n"
        "content (or could not read it), or not within the timeout (or the\n"
        "generation was never published); 69 no service, or the master\n"
        "exited; 75 the master did not answer; 77 access refused; 2 several\n"
        "services (pick one), or usage.",
    ),
    "get": (
        "print one value of the live configuration as JSON",
        "Prints the value at a dotted path of the live generation. With\n"
        "--explain, asks the master where it comes from: the layer that gave\n"
        "it (a file, etcd, a HOTCFG_SET__ variable, a rollback) and what the\n"
        "other layers hold there; for a mapping, which layers were merged\n"
        "into it.",
        "hotcfg get --explain db.timeout",
        "0 printed; 1 no such key; 69 no service found, or (--explain) its\n"
        "master serves no control socket; 75 the master did not answer\n"
        "(--explain); 77 access refused; 2 usage.",
    ),
    "dump": (
        "print the live configuration as JSON",
        "Prints the whole live generation. It may hold secrets: mind where\n"
        "the output goes.",
        "hotcfg dump > live.json",
        "0 printed; 69 no service found; 77 access refused; 2 usage.",
    ),
    "history": (
        "list the generations the master keeps, or an etcd key's changes",
        "Lists the last good generations the master keeps (HOTCFG_HISTORY,\n"
        "kept across restarts): generation, publish time, size, content\n"
        "hash and source; * marks the live one. Asks the running master\n"
        "through its control socket.\n"
        "\n"
        "With etcd://HOST:PORT/KEY: the changes of KEY and of its canary,\n"
        "newest first, from etcd's own revisions (back to its last\n"
        "compaction): revision, time, action (push, canary, promote, abort;\n"
        "put or delete for a write made without hotcfg), author, message and\n"
        "the key paths changed. --limit N rows (default 20).",
        "hotcfg history --json\n"
        "  hotcfg history etcd://10.0.0.1:2379/app/config.yaml --limit 5",
        "0 listed; 69 no service found, or its master serves no control\n"
        "socket; 75 the master (or etcd) did not answer; 77 access refused;\n"
        "2 usage.",
    ),
    "diff": (
        "changed key paths between two generations, or a file and the live one",
        "Names the key paths added (+), removed (-) and changed (~) between\n"
        "two kept generations (default: the live one and the one before),\n"
        "or between FILE, checked as the master would, and the live\n"
        "generation. Values may be secrets: they are shown only with\n"
        "--values.",
        "hotcfg diff config.new.yaml",
        "0 no differences; 1 differences (as diff(1)); 78 FILE is invalid;\n"
        "69 no service found, or its master serves no control socket; 75 the\n"
        "master did not answer; 77 access refused; 2 no generation to compare\n"
        "with (not kept, or none before the live one), FILE with --from or\n"
        "--to, or usage.",
    ),
    "push": (
        "validate a file and write it to an etcd key, compare-and-swap",
        "Checks FILE as the master would (format by its suffix or --format,\n"
        "else HOTCFG_FORMAT; the validator, JSON Schema and model given here\n"
        "or by HOTCFG_VALIDATOR, HOTCFG_SCHEMA and HOTCFG_MODEL). Then every\n"
        "live master following the key (their fleet records) must parse it,\n"
        "in the format it reads the key in and within its HOTCFG_MAX_BYTES,\n"
        "into the same document: otherwise the push is refused, naming the\n"
        "format and the masters. With no live master, FILE's format must be\n"
        "the one --format, HOTCFG_FORMAT or the key's suffix names (if any).\n"
        "Then it writes FILE's bytes to the etcd key only if nobody wrote the\n"
        "key since it was read (or since --expect-revision N, the revision\n"
        "you reviewed; 0: the key must not exist). --dry-run prints the key\n"
        "paths that would change. One key only: a prefix source\n"
        "(etcd://.../app/config/) is refused. Every push writes KEY#audit in\n"
        "the same transaction: who (--author, default user@host), why (-m)\n"
        "and the key paths changed (hotcfg history lists them).\n"
        "\n"
        "With --canary HOSTS (web-1,web-2) or --canary 10%: FILE goes to\n"
        "KEY#canary instead, served only by the masters whose HOTCFG_HOST it\n"
        "selects; KEY is untouched. A canary pushed again replaces the one\n"
        "running (a fix). hotcfg promote makes it main, hotcfg abort drops it.\n"
        "etcd auth and TLS come from HOTCFG_ETCD_USER,\n"
        "HOTCFG_ETCD_PASSWORD_FILE, HOTCFG_ETCD_CA_FILE, HOTCFG_ETCD_CERT_FILE\n"
        "and HOTCFG_ETCD_KEY_FILE, as for the master.",
        "hotcfg push config.yaml etcd://10.0.0.1:2379/app/config.yaml\n"
        "  hotcfg push new.yaml etcd://10.0.0.1:2379/app/config.yaml --canary web-1 "
        "-m 'pool up'",
        "0 written (the new revision is printed), or --dry-run shown; 1 FILE\n"
        "is invalid, a live master would not parse it, or a conflict\n"
        "(someone wrote in between: the revision there now is named); nothing\n"
        "written; 75 etcd unreachable; 77 etcd refused access\n"
        "(authentication, TLS); 78 FILE's format is not the key's (no live\n"
        "master), or a HOTCFG_ETCD_* setting is invalid; 2 not one etcd key\n"
        "(another scheme, a prefix), or usage.",
    ),
    "promote": (
        "make an etcd key's canary its main content",
        "Writes the canary's content (KEY#canary) to KEY and deletes the\n"
        "canary, in one etcd transaction that holds only if neither key\n"
        "changed since they were read. Refused unless every live master the\n"
        "canary's selector picks serves the canary (track canary, at the\n"
        "canary's revision, no rejection, every worker on its generation), at\n"
        "least one does, and KEY is still at the revision the canary was\n"
        "pushed on: each master not ready is named with why. --force skips\n"
        "these checks (not the compare-and-swap).",
        "hotcfg promote etcd://10.0.0.1:2379/app/config.yaml -m 'looks good'",
        "0 promoted; 1 no canary, a selected master not ready, KEY moved since\n"
        "the canary was pushed, or a conflict (someone changed KEY or the\n"
        "canary in between); nothing written; 75 etcd unreachable (the promote\n"
        "may or may not have happened: hotcfg history KEY tells); 77 etcd\n"
        "refused access; 78 a HOTCFG_* setting invalid; 2 usage.",
    ),
    "abort": (
        "drop an etcd key's canary: every master serves the main content",
        "Deletes KEY#canary, if nobody changed it since it was read, and\n"
        "writes KEY#audit in the same transaction. KEY is untouched.",
        "hotcfg abort etcd://10.0.0.1:2379/app/config.yaml -m 'p99 up'",
        "0 aborted; 1 no canary, or a conflict (the canary changed in\n"
        "between); nothing written; 75 etcd unreachable; 77 etcd refused\n"
        "access; 78 a HOTCFG_* setting invalid; 2 usage.",
    ),
    "rollback": (
        "publish a kept generation's content again, as a new one",
        "Publishes the content of generation G (default: the one before the\n"
        "live one) as a new generation, validated and hinted to every worker\n"
        "like any change. The source still holds the newer content: its next\n"
        "change, or a HUP of the master, publishes that again. The history\n"
        "records it as a rollback, by --author (default: user@host), for -m.",
        "hotcfg rollback --to 41 -m 'pool too small' && hotcfg wait",
        "0 published; 1 the master refused (G is not kept, or its content is\n"
        "live already); 69 no service found, or its master serves no control\n"
        "socket; 75 the master is busy or did not answer; 77 access refused;\n"
        "2 usage.",
    ),
    "agent": (
        "publish for an app whose processes only read (HOTCFG_PEERS=read)",
        "Runs the publisher of the service that HOTCFG_SOURCE, HOTCFG_NAME and\n"
        "HOTCFG_SEGMENT_DIR name, holding its publisher lock, as a Gunicorn\n"
        "master would: the watcher, the control socket (history, diff,\n"
        "rollback), the metrics (HOTCFG_METRICS) and, for etcd, the fleet\n"
        "record. The app's processes run with HOTCFG_PEERS=read and the same\n"
        "HOTCFG_* settings: they never publish, and wake by a socket in the\n"
        "segment directory (they may be in another PID namespace: a\n"
        "Kubernetes sidecar). Logs to stderr; runs until SIGTERM or SIGINT;\n"
        "SIGHUP reads the source again (even after a rollback).",
        "HOTCFG_SOURCE=/etc/app/config.yaml HOTCFG_NAME=app hotcfg agent",
        "0 stopped by SIGTERM or SIGINT; 78 the source or a setting is\n"
        "invalid at start; 1 HOTCFG_SOURCE is not set.",
    ),
}


#: Each command's function, as "module:function" of this package, imported
#: only when the command runs (the others' imports cost the start-up).
_RUN = {
    "validate": "local:cmd_validate",
    "status": "parser:_status",
    "clean": "clean:cmd_clean",
    "wait": "local:cmd_wait",
    "get": "parser:_get",
    "dump": "local:cmd_dump",
    "history": "parser:_history",
    "diff": "control:cmd_diff",
    "rollback": "control:cmd_rollback",
    "push": "parser:_push",
    "promote": "rollout:cmd_promote",
    "abort": "rollout:cmd_abort",
    "agent": "agent:cmd_agent",
}


class _Formatter(argparse.HelpFormatter):
    """argparse's, with the terminal's width found without ``shutil``, whose
    import (bz2, lzma) costs a fifth of the interpreter's start-up."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, width or _columns() - 2
        )


class _RawFormatter(argparse.RawDescriptionHelpFormatter, _Formatter):
    """Each command's help: the description's line breaks kept."""


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` tells it:
    ``COLUMNS``, else stdout's terminal, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size((sys.__stdout__ or sys.stdout).fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


_JSON_HELP = "machine-readable output (docs/reference/exit-codes.md)"


def _subcommand(
    sub: Any, name: str, *, selects: bool = True
) -> argparse.ArgumentParser:
    summary, what, example, codes = _HELP[name]
    epilog = f"example:\n  {example}\n\nexit codes:\n  " + codes.replace("\n", "\n  ")
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=what,
        epilog=epilog,
        formatter_class=_RawFormatter,
    )
    if selects:
        p.add_argument("--dir", help="segment directory (default: HOTCFG_SEGMENT_DIR)")
        p.add_argument("--segment", help="path of one segment file")
        p.add_argument("--name", help="the service's segment name (HOTCFG_NAME)")
        p.add_argument("--pid", type=int, help="the service's master pid")
    p.set_defaults(run=_RUN[name])
    return p


def build_parser(
    command: str | None = None, *, arguments: bool = True
) -> argparse.ArgumentParser:
    """The parser of every command, or only of ``command`` (what parsing a
    command line naming it needs: a third of the start-up is argparse
    building parsers). Without ``arguments`` the commands are there with
    their summaries only: enough for ``hotcfg --help`` and for a command
    line that names none."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="hotcfg",
        description="Check a config file, and inspect or wait on the running "
        "services that hotcfg publishes to on this host.",
        epilog="Run hotcfg COMMAND --help for what a command does, an example and "
        "its exit codes. Every command: 130 interrupted, 141 its output closed "
        "early (hotcfg status | head); docs/reference/exit-codes.md lists them all.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"hotcfg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add_arguments in _ARGUMENTS.items():
        if command is None or name == command:
            selects = arguments and name not in (
                "validate",
                "clean",
                "push",
                "agent",
                "promote",
                "abort",
            )
            p = _subcommand(sub, name, selects=selects)
            if arguments:
                add_arguments(p)
    return parser


def _validate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file")
    p.add_argument("--format", choices=["yaml", "json", "toml"])
    p.add_argument("--schema", help="JSON Schema file")
    p.add_argument("--validator", help="module:function")
    p.add_argument("--model", help="module:Class, a dataclass or pydantic model")
    p.add_argument("--json", action="store_true", help=_JSON_HELP)


def _status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.add_argument(
        "--fleet",
        metavar="etcd://HOST:PORT[,...]/KEY",
        nargs="?",
        const="",
        help="every host following this etcd key, from etcd (not this host); "
        "default: the etcd key of HOTCFG_SOURCE",
    )
    p.add_argument(
        "--stale",
        action="store_true",
        help="the files of services that no longer run (see hotcfg clean)",
    )


def _clean_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", help="segment directory (default: HOTCFG_SEGMENT_DIR)")
    p.add_argument("--dry-run", action="store_true", help="list them only")


def _wait_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--generation",
        type=int,
        help="the generation to wait for (default: the one holding the source now)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (default: 30)")
    p.add_argument("--json", action="store_true", help=_JSON_HELP)


def _get_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("key", help="dotted path, e.g. db.timeout")
    p.add_argument(
        "--explain",
        action="store_true",
        help="where the value comes from (asks the master)",
    )
    p.add_argument("--json", action="store_true", help="with --explain: as JSON")


def _dump_args(p: argparse.ArgumentParser) -> None:
    """``dump`` has the selection options only."""


def _history_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "url",
        nargs="?",
        metavar="etcd://HOST:PORT[,...]/KEY",
        help="an etcd key: its changes, from etcd (not this host's master)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="with an etcd key: at most N changes (default: 20)",
    )
    p.add_argument("--json", action="store_true", help=_JSON_HELP)


def _audited(p: argparse.ArgumentParser) -> None:
    """Who makes a change of an etcd key, and why (its audit record)."""
    p.add_argument("-m", "--message", default="", help="why (kept in KEY#audit)")
    p.add_argument("--author", help="who (default: user@host)")


def _expect_canary(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--expect-canary-revision",
        type=int,
        metavar="N",
        help="act only if KEY#canary is still at revision N, the one reviewed "
        "in status --fleet (0: there must be none)",
    )


def _promote_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", metavar="etcd://HOST:PORT[,...]/KEY")
    p.add_argument(
        "--force",
        action="store_true",
        help="skip the checks of the masters and of KEY's revision",
    )
    _expect_canary(p)
    _audited(p)
    p.add_argument("--json", action="store_true", help=_JSON_HELP)


def _abort_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", metavar="etcd://HOST:PORT[,...]/KEY")
    _expect_canary(p)
    _audited(p)
    p.add_argument("--json", action="store_true", help=_JSON_HELP)


def _diff_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="config file, checked as the master would")
    p.add_argument("--format", choices=["yaml", "json", "toml"])
    p.add_argument(
        "--from", dest="from_", type=int, help="older generation (default: before --to)"
    )
    p.add_argument("--to", type=int, help="newer generation (default: the live one)")
    p.add_argument(
        "--values", action="store_true", help="show values too (they may be secrets)"
    )
    p.add_argument("--json", action="store_true", help=_JSON_HELP)


def _rollback_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--to", type=int, help="generation to go back to (default: the one before)"
    )
    p.add_argument(
        "-m",
        "--message",
        metavar="MSG",
        help="why, recorded in the master's history (hotcfg history)",
    )
    p.add_argument(
        "--author",
        metavar="WHO",
        help="who, recorded in the master's history (default: user@host)",
    )
    p.add_argument("--json", action="store_true", help=_JSON_HELP)


def _push_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="config file, checked as the master would")
    p.add_argument("url", metavar="etcd://HOST:PORT[,...]/KEY")
    p.add_argument("--format", choices=["yaml", "json", "toml"])
    p.add_argument("--schema", help="JSON Schema file")
    p.add_argument("--validator", help="module:function")
    p.add_argument("--model", help="module:Class, a dataclass or pydantic model")
    p.add_argument(
        "--expect-revision",
        type=int,
        metavar="N",
        help="write only if the key is still at revision N (0: must not exist)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the changed key paths only"
    )
    p.add_argument(
        "--values", action="store_true", help="with --dry-run, show values too"
    )
    p.add_argument(
        "--canary",
        metavar="SEL",
        help="write KEY#canary for these hosts (web-1,web-2) or a share (10%%); "
        "KEY is untouched",
    )
    _expect_canary(p)
    _audited(p)
    p.add_argument("--json", action="store_true", help=_JSON_HELP)


def _agent_args(p: argparse.ArgumentParser) -> None:
    """``agent`` takes its settings from the ``HOTCFG_*`` environment only,
    as the app's processes do: both sides must name the same service."""


#: Each command's own arguments, in the order ``hotcfg --help`` lists them.
_ARGUMENTS = {
    "validate": _validate_args,
    "status": _status_args,
    "clean": _clean_args,
    "wait": _wait_args,
    "get": _get_args,
    "dump": _dump_args,
    "history": _history_args,
    "diff": _diff_args,
    "rollback": _rollback_args,
    "push": _push_args,
    "promote": _promote_args,
    "abort": _abort_args,
    "agent": _agent_args,
}


def _named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option
    (``hotcfg`` itself takes no option with a value), if it is a command."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in _ARGUMENTS else None


def _status(args: argparse.Namespace) -> int:
    """``status``: this host's services, or with ``--fleet`` every master
    following an etcd key, from etcd."""
    if args.stale:
        from .clean import status_stale

        return status_stale(args)
    if args.fleet is None:
        from .local import cmd_status

        return cmd_status(args)
    if not args.fleet:  # --fleet without a key: HOTCFG_SOURCE's etcd layer
        from .._settings import Settings
        from .fleet_default import NO_DEFAULT, etcd_layer

        args.fleet = etcd_layer(Settings.resolve().source)
        if args.fleet is None:
            print(NO_DEFAULT, file=sys.stderr)
            return Exit.USAGE
    from .etcd import status_fleet

    return status_fleet(args)


def _push(args: argparse.Namespace) -> int:
    """``push``: to the key, or with ``--canary`` to its canary."""
    if args.canary is None and args.expect_canary_revision is not None:
        print("--expect-canary-revision goes with --canary", file=sys.stderr)
        return Exit.USAGE
    if args.canary is not None:
        from .rollout import cmd_push_canary

        return cmd_push_canary(args)
    from .etcd import cmd_push

    return cmd_push(args)


def _history(args: argparse.Namespace) -> int:
    """``history``: the local master's generations, or with an etcd key
    its changes, from etcd."""
    if args.url is None:
        from .control import cmd_history

        return cmd_history(args)
    if not args.url.startswith("etcd://"):
        print(
            f"hotcfg history takes an etcd key (etcd://host:port/key), not {args.url}",
            file=sys.stderr,
        )
        return Exit.USAGE
    from .rollout import cmd_history_etcd

    return cmd_history_etcd(args)


def _get(args: argparse.Namespace) -> int:
    """``get``: the value from the segment, or with ``--explain`` where it
    comes from, from the master (which keeps the layers)."""
    if args.explain:
        from .control import explain

        return explain(args)
    from .local import cmd_get

    return cmd_get(args)


def _command(spec: str) -> Any:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(f".{module}", __package__), function)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; what it did not handle becomes an exit code
    (:func:`.exits.for_error`) with one line on stderr, never a traceback:
    not for an error, nor for a reader that went away (141) or Ctrl-C (130).
    argparse's own exits (``--help``, a usage error: 2) stay ``SystemExit``.
    """
    words = sys.argv[1:] if argv is None else list(argv)
    command = _named_command(words)
    try:
        try:
            args = build_parser(command, arguments=command is not None).parse_args(
                words
            )
        except SystemExit:
            sys.stdout.flush()  # the help, into a pipe maybe closed already
            raise
        code = _run(args)
        sys.stdout.flush()  # a reader gone away shows here, not at exit
    except BrokenPipeError:
        quiet_stdout()
        return Exit.BROKEN_PIPE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return Exit.INTERRUPTED
    return code


def _run(args: argparse.Namespace) -> int:
    """The command's exit code; its errors said in one line."""
    try:
        return int(_command(args.run)(args))
    except Stop as stop:
        print(stop, file=sys.stderr)
        return stop.code
    except BrokenPipeError:
        raise
    except Exception as exc:
        from .._errors import HotcfgError

        if not isinstance(exc, (HotcfgError, OSError)):
            raise
        print(f"hotcfg: {exc}", file=sys.stderr)
        return for_error(exc)
