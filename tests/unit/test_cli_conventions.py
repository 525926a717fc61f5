"""The hotcfg command's conventions: --version, one meaning per exit code
(and each command's --help lists only documented ones), the --json shapes,
times with their zone, and what `hotcfg --help` leaves unloaded."""

import argparse
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hotcfg import _version, cli
from hotcfg._errors import (
    ConfigError,
    ControlError,
    CorruptSegmentError,
    SegmentError,
    SourceError,
    UnreachableError,
)
from hotcfg._master import control as _control
from hotcfg.cli import parser
from hotcfg.cli.control import diff_json
from hotcfg.cli.exits import Exit, for_error
from hotcfg.cli.local import status_json
from hotcfg.cli.times import local, utc

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "exit-codes.md"
COMMANDS = [
    "validate", "status", "wait", "get", "dump", "history", "diff", "rollback", "push"
]  # fmt: skip


def test_version_says_the_package_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"hotcfg {_version.__version__}\n"
    # The parser says the same (hotcfg --help lists it).
    with pytest.raises(SystemExit) as done:
        parser.build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"hotcfg {_version.__version__}\n"


def test_a_usage_error_is_2_from_argparse(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["status", "--no-such-option"])
    assert done.value.code == Exit.USAGE == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_the_codes_follow_sysexits():
    assert {e.name: e.value for e in Exit} == {
        "OK": 0,
        "NO": 1,
        "USAGE": 2,
        "NO_SERVICE": 69,
        "UNREACHABLE": 75,
        "NO_PERMISSION": 77,
        "CONFIG": 78,
        "INTERRUPTED": 130,
        "BROKEN_PIPE": 141,
    }


def test_the_page_documents_every_code_by_name():
    text = PAGE.read_text()
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", text, flags=re.MULTILINE)
    assert {int(code): name for code, name in rows} == {e.value: e.name for e in Exit}


def _help_codes(command):
    epilog = (
        parser.build_parser(command)
        ._subparsers._group_actions[0]
        .choices[command]
        .epilog
    )
    codes = epilog.split("exit codes:", 1)[1]
    return {int(c) for c in re.findall(r"(?:^|[;:\s])(\d+) ", codes)}


@pytest.mark.parametrize("command", COMMANDS)
def test_each_commands_help_lists_documented_codes_only(command):
    codes = _help_codes(command)
    assert codes <= {e.value for e in Exit}, codes
    assert {0, 2} <= codes
    assert 2 in codes  # usage, at least


@pytest.mark.parametrize("command", COMMANDS)
def test_the_parser_of_one_command_is_the_full_parsers(command):
    """Only the named command's parser is built; it parses the same."""
    full = parser.build_parser()._subparsers._group_actions[0].choices[command]
    alone = parser.build_parser(command)._subparsers._group_actions[0].choices[command]
    assert alone.format_help() == full.format_help()


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (PermissionError(13, "Permission denied"), Exit.NO_PERMISSION),
        (UnreachableError("etcd down", source="etcd://x"), Exit.UNREACHABLE),
        (_control.ControlUnavailable("no socket"), Exit.NO_SERVICE),
        (_control.ControlDenied("uid 1 is not the service's"), Exit.NO_PERMISSION),
        (_control.ControlRefused("generation 3 is not kept"), Exit.NO),
        (_control.ControlRefused(_control.TOO_MANY), Exit.UNREACHABLE),
        (ControlError("the message did not arrive in time"), Exit.UNREACHABLE),
        (ConfigError("bad", source="HOTCFG_MAX_BYTES"), Exit.CONFIG),
        (SourceError("file not found", source="/x"), Exit.CONFIG),
        (SegmentError("/x belongs to uid 0, not to us"), Exit.NO_PERMISSION),
        (CorruptSegmentError("header"), Exit.NO_SERVICE),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_errors_map_to_their_codes(exc, code):
    assert for_error(exc) is code


def _caused(outer, inner):
    """``outer`` as if raised ``from inner``, as a command would see it."""
    outer.__cause__ = inner
    return outer


def test_a_permission_error_under_another_is_77():
    denied = PermissionError(13, "Permission denied")
    outer = _caused(ControlError("cannot talk to the master"), denied)
    assert for_error(outer) is Exit.NO_PERMISSION


def test_a_segment_gone_meanwhile_is_no_service():
    gone = FileNotFoundError(2, "No such file")
    outer = _caused(SegmentError("cannot open segment /x"), gone)
    assert for_error(outer) is Exit.NO_SERVICE


def test_human_times_are_local_with_their_offset():
    shown = local(1_796_454_600.0)
    parsed = datetime.fromisoformat(shown)
    assert parsed.utcoffset() is not None
    assert parsed.timestamp() == 1_796_454_600.0
    assert local(0) == "never"


def test_json_times_are_utc_iso_8601():
    assert utc(1_796_454_600.0) == "2026-12-05T07:10:00.000+00:00"
    assert datetime.fromisoformat(utc(1.5)).utcoffset() == timedelta(0)
    assert utc(0) is None
    assert utc(None) is None


def test_status_json_writes_every_time_as_utc():
    report = {
        "segment": "/dev/shm/hotcfg-0/app-1-x.seg",
        "name": "app",
        "master_pid": 1,
        "master_alive": True,
        "generation": 3,
        "published_at": 1_796_454_600.0,
        "source": "/etc/app.yaml",
        "last_error": "bad",
        "last_error_at": 1_796_454_601.0,
        "rejected_count": 1,
        "validating": {"validator": "v", "since": 1_796_454_602.0},
        "workers": [
            {"pid": 2, "generation": 3, "applied_at": 1_796_454_603.0,
             "alive": True, "behind_s": None},
        ],
    }  # fmt: skip
    shown = json.loads(json.dumps(status_json(report)))
    assert shown["published_at"] == "2026-12-05T07:10:00.000+00:00"
    assert shown["last_error_at"] == "2026-12-05T07:10:01.000+00:00"
    assert shown["validating"]["since"] == "2026-12-05T07:10:02.000+00:00"
    assert shown["workers"][0]["applied_at"] == "2026-12-05T07:10:03.000+00:00"
    assert set(shown) == set(report)


def test_diff_json_shape():
    from hotcfg._content import diff as _diff

    changes = _diff.diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 4})
    hidden = diff_json(changes, ("generation 1", "generation 2"), False)
    assert hidden == {
        "from": "generation 1",
        "to": "generation 2",
        "differences": True,
        "changes": [
            {"kind": "changed", "path": ["b", "c"], "key": "b.c"},
            {"kind": "added", "path": ["d"], "key": "d"},
        ],
    }
    shown = diff_json(changes, ("x", "y"), True)
    assert shown["changes"][0] == {
        "kind": "changed", "path": ["b", "c"], "key": "b.c", "old": 2, "new": 3
    }  # fmt: skip
    assert diff_json([], ("x", "y"), False)["differences"] is False


def test_status_json_with_no_service_is_an_empty_list(tmp_path, capsys):
    empty = tmp_path / "none"
    empty.mkdir(mode=0o700)
    assert cli.main(["status", "--json", "--dir", str(empty)]) == Exit.NO_SERVICE
    out = capsys.readouterr()
    assert json.loads(out.out) == []
    assert "no running hotcfg service" in out.err


def test_validate_json(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\nb: [1, 2]\n")
    assert cli.main(["validate", str(good), "--json"]) == Exit.OK
    report = json.loads(capsys.readouterr().out)
    assert (report["valid"], report["error"], report["top_level_keys"]) == (
        True, None, 2
    )  # fmt: skip
    assert report["packed_bytes"] > 0

    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    assert cli.main(["validate", str(bad), "--json"]) == Exit.NO
    report = json.loads(capsys.readouterr().out)
    assert (report["valid"], report["top_level_keys"]) == (False, None)
    assert "invalid YAML" in report["error"]
    assert set(report) == {"file", "valid", "error", "top_level_keys", "packed_bytes"}


def test_validate_tells_a_bad_check_from_a_bad_file(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\n")
    missing = str(tmp_path / "missing-schema.json")
    assert cli.main(["validate", str(good), "--schema", missing]) == Exit.CONFIG
    assert "missing-schema.json" in capsys.readouterr().err
    assert cli.main(["validate", str(tmp_path / "gone.yaml")]) == Exit.NO


def test_diff_with_a_file_and_from_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["diff", "x.yaml", "--from", "1", "--dir", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err


FORBIDDEN = (
    "yaml",
    "msgpack",
    "tomllib",
    "hotcfg._settings",
    "hotcfg._segment.shm",
    "hotcfg._master",
    "hotcfg._sources",
    "hotcfg._content",
)

LOADED = """
import json, sys
from hotcfg.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as done:
    code = done.code
sys.stdout.flush()
sys.stderr.write(json.dumps(sorted(sys.modules)))
"""


def _modules_after(code, argv, segments):
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True, text=True, timeout=30, check=False, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOTCFG_SEGMENT_DIR": segments},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr[done.stderr.index("[") :]))


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["status"]])
def test_start_up_loads_none_of_the_commands_modules(argv, tmp_path):
    """``hotcfg --help``, ``--version`` and ``status`` with no service load
    neither the parsers, msgpack, the settings, the control socket, the
    history nor the sources (they cost more than the interpreter's start)."""
    empty = tmp_path / "no-service"
    empty.mkdir(mode=0o700)
    bare = "import json, sys; sys.stderr.write(json.dumps(sorted(sys.modules)))"
    loaded = _modules_after(LOADED, argv, str(empty)) - _modules_after(
        bare, [], str(empty)
    )
    heavy = sorted(
        m for m in loaded if any(m == f or m.startswith(f"{f}.") for f in FORBIDDEN)
    )
    assert heavy == []
    assert "typing" not in loaded  # hotcfg's own imports do not need it


def test_no_options_is_a_usage_error_listing_the_commands(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([])
    assert done.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_the_columns_follow_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    formatter = parser._Formatter("hotcfg")
    assert isinstance(formatter, argparse.HelpFormatter)
    assert formatter._width == 58


@pytest.mark.parametrize(
    ("raised", "code"),
    [(KeyboardInterrupt(), Exit.INTERRUPTED), (BrokenPipeError(), Exit.BROKEN_PIPE)],
    ids=["ctrl-c", "closed-pipe"],
)
def test_interrupted_and_closed_pipe_are_codes_not_tracebacks(
    monkeypatch, tmp_path, capsys, raised, code
):
    def command(args):
        raise raised

    monkeypatch.setattr(parser, "_command", lambda spec: command)
    assert parser.main(["dump", "--dir", str(tmp_path)]) == code
    assert "Traceback" not in capsys.readouterr().err


def test_an_unexpected_error_is_not_swallowed(monkeypatch, tmp_path):
    """Only hotcfg's errors and OSError become codes: a bug keeps its
    traceback."""

    def command(args):
        raise ZeroDivisionError

    monkeypatch.setattr(parser, "_command", lambda spec: command)
    with pytest.raises(ZeroDivisionError):
        parser.main(["dump", "--dir", str(tmp_path)])


def test_fleet_records_json_write_their_times_as_utc():
    from hotcfg.cli.etcd import _record_json

    record = {"host": "web-1", "pid": 7, "published_at": 1_796_454_600.0,
              "updated_at": 1_796_454_601.5, "workers": []}  # fmt: skip
    shown = _record_json(record)
    assert shown["published_at"] == "2026-12-05T07:10:00.000+00:00"
    assert shown["updated_at"] == "2026-12-05T07:10:01.500+00:00"
    assert (shown["host"], shown["pid"]) == ("web-1", 7)
