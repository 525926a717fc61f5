"""Every kind of bad configuration, fed through the master's publishing path.

One table; each row is a file saved over a good one. The rule checked for
every row: the last good generation stays (a Reader still decodes it), one
HotcfgError subclass names the file and the place (line:col or key path)
without echoing the content, the error is in the segment header and logged
once, and saving a good file again publishes and clears the error.
"""

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hotcfg import cli
from hotcfg._errors import ParseError, SourceError, ValidationError
from hotcfg._master.publisher import Publisher
from hotcfg._segment.layout import read_header, read_workers
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.file import FileSource
from hotcfg._worker.reader import ChangeCallbacks, Reader

SECRET = "s3cr3t-d0-not-log"
MAX_BYTES = 1 << 20
SCHEMA = {
    "type": "object",
    "required": ["db"],
    "properties": {
        "db": {
            "type": "object",
            "required": ["host", "port"],
            "properties": {"host": {"type": "string"}, "port": {"type": "integer"}},
        }
    },
}


def good(fmt, port):
    """A valid document holding the secret, in ``fmt``."""
    if fmt == "toml":
        return f'password = "{SECRET}"\n[db]\nhost = "db1"\nport = {port}\n'.encode()
    doc = {"password": SECRET, "db": {"host": "db1", "port": port}}
    return (json.dumps(doc) if fmt == "json" else yaml.safe_dump(doc)).encode()


def save(path, content):
    """Save like most editors: write a temporary file, then rename it over."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def save_in_place(path, content):
    """Save like editors that truncate and rewrite the same inode."""
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(content)


def clear(path):
    """Remove whatever a case left at ``path`` (file, FIFO, link or directory)."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()


def put_fifo(path):
    os.mkfifo(path.with_name("fifo"))
    os.replace(path.with_name("fifo"), path)


def put_link(target):
    def put(path):
        os.symlink(target, path.with_name("link"))
        os.replace(path.with_name("link"), path)

    return put


def put_fifo_link(path):
    fifo = path.with_name("real-fifo")
    if not fifo.exists():
        os.mkfifo(fifo)
    put_link(fifo)(path)


def put_directory(path):
    path.unlink()
    path.mkdir()


def alias_bomb(levels=9, width=10):
    """Billion laughs: a few hundred bytes naming width**levels values."""
    lines = [f'password: "{SECRET}"', "l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return ("\n".join(lines) + "\n").encode()


def long_string_bomb():
    """Few values, but each repeats one long string: gigabytes once packed."""
    lines = [f'password: "{SECRET}"', "s: &s " + "x" * 10_000]
    lines.append("l1: &l1 [" + ", ".join(["*s"] * 16) + "]")
    for i in range(2, 5):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 16) + "]")
    return ("\n".join(lines) + "\n").encode()


def nested(fmt, depth):
    if fmt == "yaml":
        return b"a: " + b"[" * depth + b"]" * depth + b"\n"
    if fmt == "json":
        return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    return b"a = " + b"[" * depth + b"]" * depth + b"\n"


@dataclass(frozen=True)
class Case:
    """One bad input.

    ``place`` is what must follow the file's path in the message: ``":3:1"``
    for a line and column, ``": at db.port"`` for a key path, ``""`` when
    the problem has no place (the whole file).
    """

    fmt: str
    content: bytes | None
    error: type
    place: str
    reason: str
    put: object = None  # puts a special file at the path instead of content
    in_place: bool = False
    timeout_s: int = 10  # a FIFO or a device must neither block nor read forever


S = SECRET.encode()
CASES = {
    # Syntax.
    "yaml-syntax-error": Case(
        "yaml", b"password: " + S + b"\nports: [1, 2\n", ParseError, ":3:1",
        "invalid YAML"),
    "json-syntax-error": Case(
        "json", b'{"password": "' + S + b'",\n "db": }', ParseError, ":2:8",
        "invalid JSON"),
    "toml-syntax-error": Case(
        "toml", b'password = "' + S + b'"\nport = = 2\n', ParseError, ":2:8",
        "invalid TOML"),
    "toml-unclosed-at-end": Case(
        "toml", b'password = "' + S + b'"\nports = [1,', ParseError, ":2:12",
        "invalid TOML"),
    # Nothing at the top level, or not a mapping.
    "empty-file": Case("yaml", b"", SourceError, "", "file is empty"),
    "whitespace-only": Case("yaml", b"  \n\n\t\n", SourceError, "", "file is empty"),
    "yaml-comment-only": Case(
        "yaml", b"# password: " + S + b"\n", ValidationError, ": at <top level>",
        "not empty"),
    "toml-comment-only": Case(
        "toml", b"# password = '" + S + b"'\n", ValidationError,
        ": at <top level>", "not empty"),
    "yaml-null": Case("yaml", b"null\n", ValidationError, ": at <top level>", "empty"),
    "yaml-tilde": Case("yaml", b"~\n", ValidationError, ": at <top level>", "empty"),
    "yaml-document-marker-only": Case(
        "yaml", b"---\n", ValidationError, ": at <top level>", "empty"),
    "json-null": Case("json", b"null", ValidationError, ": at <top level>", "empty"),
    "yaml-list": Case(
        "yaml", b"- " + S + b"\n", ValidationError, ": at <top level>", "not list"),
    "json-list": Case(
        "json", b'["' + S + b'"]', ValidationError, ": at <top level>", "not list"),
    "yaml-scalar": Case(
        "yaml", S + b"\n", ValidationError, ": at <top level>", "not str"),
    "json-number": Case("json", b"42", ValidationError, ": at <top level>", "not int"),
    "yaml-two-documents": Case(
        "yaml", b"a: 1\n---\npassword: " + S + b"\n", ParseError, ":2:1",
        "another document"),
    # Cut off mid-write. Only the schema sees the ones that still parse.
    "yaml-cut-before-last-key": Case(
        "yaml", b"password: " + S + b"\ndb:\n  host: db1\n", ValidationError,
        ": at db.port", "required key missing", in_place=True),
    "yaml-cut-after-colon": Case(
        "yaml", b"password: " + S + b"\ndb:\n  host: db1\n  port:", ValidationError,
        ": at db.port", "schema rule 'type'", in_place=True),
    "yaml-cut-mid-key": Case(
        "yaml", b"password: " + S + b"\ndb:\n  host: db1\n  po", ParseError, ":5:1",
        "could not find expected ':'", in_place=True),
    "toml-cut-before-table": Case(
        "toml", b'password = "' + S + b'"\n', ValidationError, ": at db",
        "required key missing", in_place=True),
    "toml-cut-mid-string": Case(
        "toml", b'password = "' + S, ParseError, ":1:", "invalid TOML",
        in_place=True),
    "json-cut": Case(
        "json", b'{"password": "' + S + b'", "db": {"host": "db1"', ParseError,
        ":1:", "invalid JSON", in_place=True),
    # Alias bombs and recursive aliases.
    "yaml-billion-laughs": Case(
        "yaml", alias_bomb(), ValidationError, "", "more than 2000000 values",
        timeout_s=30),  # about a second alone; far more on a busy machine
    "yaml-long-string-bomb": Case(
        "yaml", long_string_bomb(), ValidationError, "",
        "expands to more than 268435456 bytes"),
    "yaml-recursive-list-alias": Case(
        "yaml", b"password: " + S + b"\na: &a [*a]\n", ValidationError,
        ": at a.0.0.0", "nested deeper than 64"),
    "yaml-recursive-map-alias": Case(
        "yaml", b"password: " + S + b"\na: &a {b: *a}\n", ValidationError,
        ": at a.b.b.b", "nested deeper than 64"),
    # Nesting: parsers' recursion limits, then the packer's (msgpack: 512).
    "yaml-100k-brackets": Case(
        "yaml", nested("yaml", 100_000), ParseError, ":1:1003",
        "maximum nesting depth"),
    "json-100k-brackets": Case(
        "json", nested("json", 100_000), ParseError, "", "nested too deeply"),
    "toml-100k-brackets": Case(
        "toml", nested("toml", 100_000), ParseError, "", "nested too deeply"),
    "toml-10k-inline-tables": Case(
        "toml", b"a = " + b"{b = " * 10_000 + b"1" + b"}" * 10_000 + b"\n",
        ParseError, "", "nested too deeply"),
    "json-600-levels-past-packer-limit": Case(
        "json", nested("json", 600), ValidationError, ": at a.0.0",
        "nested deeper than 64"),
    "yaml-100-levels": Case(
        "yaml", nested("yaml", 100), ValidationError, ": at a.0.0",
        "nested deeper than 64"),
    # Size and encoding.
    "over-max-bytes": Case(
        "yaml", b"password: " + S + b"\npad: " + b"x" * MAX_BYTES + b"\n",
        SourceError, "", f"over the {MAX_BYTES}-byte limit"),
    "not-utf8": Case(
        "yaml", b"password: " + S + b"\nname: caf\xe9\n", ParseError, ":2:10",
        "not valid UTF-8"),
    "nul-byte": Case(
        "yaml", b"password: " + S + b"\nx: 1\x00\n", ParseError, ":2:5", "NUL"),
    "utf16-bom": Case(
        "yaml", f"password: {SECRET}\n".encode("utf-16"), ParseError, ":1:1",
        "UTF-16"),
    "utf32-bom": Case(
        "json", f'{{"password": "{SECRET}"}}'.encode("utf-32"), ParseError, ":1:1",
        "UTF-32"),
    # Duplicate and non-string keys.
    "yaml-duplicate-key": Case(
        "yaml", b"password: " + S + b"\nport: 1\nport: 2\n", ParseError, ":3:1",
        "duplicate key"),
    "json-duplicate-key": Case(
        "json", b'{"password": "' + S + b'",\n "port": 1, "port": 2}', ParseError,
        ":2:13", "duplicate key"),
    "toml-duplicate-key": Case(
        "toml", b'password = "' + S + b'"\nport = 1\nport = 2\n', ParseError,
        ":3:9", "Cannot overwrite a value"),
    "yaml-int-key": Case(
        "yaml", b"password: " + S + b"\n1: a\n", ParseError, ":2:1",
        "keys must be strings, not int"),
    "yaml-null-key": Case(
        "yaml", b"password: " + S + b"\nnull: x\n", ParseError, ":2:1",
        "keys must be strings, not NoneType"),
    "yaml-bool-key": Case(
        "yaml", b"password: " + S + b"\non: x\n", ParseError, ":2:1",
        "keys must be strings, not bool"),
    "yaml-list-key": Case(
        "yaml", b"password: " + S + b"\n[a]: b\n", ParseError, ":2:1",
        "keys must be strings, not list"),
    "yaml-complex-key": Case(
        "yaml", b"password: " + S + b"\n? {a: 1}\n: b\n", ParseError, ":2:3",
        "keys must be strings, not dict"),
    # Values that would not mean the same in every format, or not fit msgpack.
    "yaml-date": Case(
        "yaml", b"password: " + S + b"\nwhen: 2024-01-01\n", ValidationError,
        ": at when", "type date"),
    "yaml-timestamp": Case(
        "yaml", b"password: " + S + b"\nwhen: 2024-01-01T10:00:00Z\n",
        ValidationError, ": at when", "type datetime"),
    "toml-datetime": Case(
        "toml", b'password = "' + S + b'"\nwhen = 2024-01-01T10:00:00Z\n',
        ValidationError, ": at when", "type datetime"),
    "toml-time": Case(
        "toml", b'password = "' + S + b'"\nat = 07:32:00\n', ValidationError,
        ": at at", "type time"),
    "yaml-set": Case(
        "yaml", b"password: " + S + b"\nhosts: !!set {a, b}\n", ValidationError,
        ": at hosts", "type set"),
    "yaml-binary": Case(
        "yaml", b"password: " + S + b"\nkey: !!binary aGVsbG8=\n", ValidationError,
        ": at key", "type bytes"),
    "json-lone-surrogate": Case(
        "json", b'{"password": "' + S + b'", "a": {"b": "x\\ud800"}}',
        ValidationError, ": at a.b", "lone surrogate"),
    "json-lone-surrogate-key": Case(
        "json", b'{"password": "' + S + b'", "a": {"\\udfff": 1}}',
        ValidationError, ": at a", "lone surrogate"),
    "yaml-int-2**64": Case(
        "yaml", b"password: " + S + b"\nn: %d\n" % 2**64, ValidationError, ": at n",
        "64-bit range"),
    "yaml-int-below-int64": Case(
        "yaml", b"password: " + S + b"\nn: %d\n" % (-(2**63) - 1), ValidationError,
        ": at n", "64-bit range"),
    "json-int-2**64": Case(
        "json", b'{"password": "' + S + b'", "n": %d}' % 2**64, ValidationError,
        ": at n", "64-bit range"),
    "toml-int-below-int64": Case(
        "toml", b'password = "' + S + b'"\nn = %d\n' % (-(2**63) - 1),
        ValidationError, ": at n", "64-bit range"),
    "yaml-5000-digit-int": Case(
        "yaml", b"password: " + S + b"\nn: " + b"9" * 5000 + b"\n", ParseError,
        ":2:4", "integer too long"),
    "json-5000-digit-int": Case(
        "json", b'{"password": "' + S + b'",\n"n": ' + b"9" * 5000 + b"}",
        ParseError, ":2:6", "integer too long"),
    "toml-5000-digit-int": Case(
        "toml", b'password = "' + S + b'"\nn = ' + b"9" * 5000 + b"\n", ParseError,
        ":2:5", "integer too long"),
    # Tags that would build Python objects (the command would create a file).
    "yaml-python-object-apply": Case(
        "yaml",
        b"password: " + S + b"\nx: !!python/object/apply:os.system ['touch @PWNED@']\n",
        ParseError, ":2:4", "could not determine a constructor"),
    "yaml-python-object-new": Case(
        "yaml",
        b"password: " + S + b"\nx: !!python/object/new:os.system ['touch @PWNED@']\n",
        ParseError, ":2:4", "could not determine a constructor"),
    "yaml-python-name": Case(
        "yaml", b"password: " + S + b"\nx: !!python/name:os.system ''\n", ParseError,
        ":2:4", "could not determine a constructor"),
    "yaml-unknown-local-tag": Case(
        "yaml", b"password: " + S + b"\nx: !vault abc\n", ParseError, ":2:4",
        "could not determine a constructor"),
    # Not a regular file: must neither block nor read forever.
    "fifo": Case("yaml", None, SourceError, "", "not a regular file", put_fifo),
    "symlink-to-fifo": Case(
        "yaml", None, SourceError, "", "not a regular file", put_fifo_link),
    "symlink-to-dev-zero": Case(
        "yaml", None, SourceError, "", "not a regular file", put_link("/dev/zero")),
    "symlink-to-dev-urandom": Case(
        "yaml", None, SourceError, "", "not a regular file",
        put_link("/dev/urandom")),
    "directory": Case("yaml", None, SourceError, "", "not a regular file",
                      put_directory),
    "dangling-symlink": Case(
        "yaml", None, SourceError, "", "file not found", put_link("/nonexistent")),
}  # fmt: skip


@dataclass
class Master:
    """The master's publisher (built from settings, as Gunicorn's hook does)
    after one good publish, and a worker's Reader on the same segment."""

    path: Path
    publisher: Publisher
    reader: Reader
    callbacks: ChangeCallbacks


@pytest.fixture
def master(tmp_path):
    made = []

    def start(fmt):
        path = tmp_path / f"config.{fmt}"
        save(path, good(fmt, 5432))
        schema = tmp_path / "schema.json"
        schema.write_text(json.dumps(SCHEMA))
        settings = Settings.resolve(
            {
                "HOTCFG_SOURCE": str(path),
                "HOTCFG_SCHEMA": str(schema),
                "HOTCFG_MAX_BYTES": str(MAX_BYTES),
            }
        )
        segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name="hotcfg")
        publisher = Publisher(FileSource.from_settings(settings), segment, settings)
        made.append(publisher)
        assert publisher.publish_from_source(raise_errors=True) == 1
        callbacks = ChangeCallbacks()
        reader = Reader(segment.view(), slot=0, callbacks=callbacks)
        made.append(reader)
        return Master(path, publisher, reader, callbacks)

    yield start
    for thing in reversed(made):
        thing.close()


def params():
    return [
        pytest.param(c, id=name, marks=pytest.mark.timeout(c.timeout_s))
        for name, c in CASES.items()
    ]


def status(segment_path, capsys):
    capsys.readouterr()
    assert cli.main(["status", "--json", "--segment", segment_path]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    return report


@pytest.mark.parametrize("case", params())
def test_bad_content_keeps_last_good_and_recovers(
    case, master, tmp_path, caplog, capsys
):
    m = master(case.fmt)
    path, publisher, reader = m.path, m.publisher, m.reader
    before = reader.refresh()
    assert before.generation == 1
    pwned = tmp_path / "pwned"

    def write_bad():
        if case.put is not None:
            clear(path)
            path.write_bytes(b"")
            case.put(path)
            return
        content = case.content.replace(b"@PWNED@", str(pwned).encode())
        (save_in_place if case.in_place else save)(path, content)

    caplog.set_level(logging.ERROR, logger="hotcfg")
    rejections = []
    for _ in range(2):  # the same mistake saved twice
        write_bad()
        with pytest.raises(case.error) as info:
            publisher.publish_from_source(raise_errors=True)
        rejections.append(info.value)

    message = str(rejections[0])
    assert message.startswith(f"{path}{case.place}"), message
    assert case.reason in message
    assert SECRET not in message
    assert str(rejections[1]) == message
    assert not pwned.exists()

    header = read_header(publisher.segment.buffer)
    assert header.generation == publisher.generation == 1
    assert header.error == message
    assert header.rejected_count == 2
    report = status(publisher.segment.path, capsys)
    assert (report["generation"], report["last_error"]) == (1, message)

    after = reader.refresh()
    assert after.generation == 1
    assert after.to_dict() == before.to_dict()
    assert [w.generation for w in read_workers(publisher.segment.buffer)] == [1]

    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1, logged
    assert message in logged[0]
    assert SECRET not in logged[0]

    clear(path)
    save(path, good(case.fmt, 5433))
    assert publisher.publish_from_source(raise_errors=True) == 2
    assert read_header(publisher.segment.buffer).error is None
    assert reader.refresh().get("db.port") == 5433


def test_unsafe_tag_case_would_run_under_an_unsafe_loader(tmp_path):
    """The tag rows prove something: the same document, loaded unsafely, runs."""
    pwned = tmp_path / "pwned"
    content = CASES["yaml-python-object-apply"].content
    yaml.unsafe_load(content.replace(b"@PWNED@", str(pwned).encode()))
    assert pwned.exists()


def test_utf8_bom_is_accepted(master):
    m = master("yaml")
    save(m.path, b"\xef\xbb\xbf" + good("yaml", 6000))
    assert m.publisher.publish_from_source(raise_errors=True) == 2
    assert m.reader.refresh().get("db.port") == 6000


def test_nan_is_not_a_change_forever(master):
    """NaN != NaN; saving the same file again must not make a new generation,
    and a callback on the NaN key must not fire when something else changes."""
    m = master("yaml")
    path, publisher, reader = m.path, m.publisher, m.reader
    fired = []
    m.callbacks.add("ratio", lambda old, new: fired.append("ratio"))
    m.callbacks.add("db.port", lambda old, new: fired.append("db.port"))
    nan_doc = good("yaml", 5432) + b"ratio: .nan\n"
    save(path, nan_doc)
    assert publisher.publish_from_source(raise_errors=True) == 2
    reader.refresh()
    fired.clear()
    for _ in range(3):
        save(path, nan_doc)
        assert publisher.publish_from_source(raise_errors=True) is None
    assert publisher.generation == 2
    save(path, good("yaml", 5433) + b"ratio: .nan\n")
    assert publisher.publish_from_source(raise_errors=True) == 3
    assert reader.refresh().generation == 3
    assert fired == ["db.port"]
