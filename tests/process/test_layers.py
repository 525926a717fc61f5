"""Layered sources with a real publisher, real files and a real etcd: the
whole merge is published or none of it, and --explain follows the live
generation."""

import os
import threading

import msgpack
import pytest

from hotcfg._errors import ConfigError, SourceError, UnreachableError
from hotcfg._master import coldstart
from hotcfg._master import control as _control
from hotcfg._master import history as _history
from hotcfg._master.history import Entry
from hotcfg._master.publisher import Publisher
from hotcfg._segment import layout
from hotcfg._segment import payload as _payload
from hotcfg._segment.shm import Segment
from hotcfg._settings import Settings
from hotcfg._sources.layered import LayeredSource
from hotcfg._sources.select import source_for
from hotcfg._worker.reader import Reader
from hotcfg.cli import main
from tests.etcd import PROGRESS_MS
from tests.waiting import wait_for

KEY = "/app/config.yaml"


class Master:
    """A publisher on a layered source, watching, and a reader of its segment."""

    def __init__(self, source, environ=None, *, keep_history=False, name="layers"):
        self.settings = Settings.resolve(
            {},
            source=source,
            debounce_ms=10,
            poll_interval_ms=100,
            etcd_progress_ms=PROGRESS_MS,
            etcd_timeout_ms=1000,
        )
        self.source = source_for(self.settings, environ=environ or {})
        assert isinstance(self.source, LayeredSource)
        self.segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name=name)
        self.publisher = Publisher(
            self.source, self.segment, self.settings, keep_history=keep_history
        )
        self.reader = Reader(self.segment.view())

    def start(self):
        generation = self.publisher.start()
        self.publisher.start_watching()
        return generation

    def live(self):
        return self.reader.refresh()

    def wait(self, what, **values):
        wait_for(
            lambda: all(self.live().get(k) == v for k, v in values.items()),
            f"{what}: {values} (live: {dict(self.live())})",
        )

    def error(self):
        return layout.read_header(self.segment.buffer).error or ""

    def explain(self, path):
        return _control.handle(self.publisher, {"cmd": "explain", "path": path})

    def close(self):
        self.reader.close()
        self.publisher.close()


@pytest.fixture
def masters():
    started = []

    def make(*args, **kwargs):
        master = Master(*args, **kwargs)
        started.append(master)
        return master

    yield make
    for master in started:
        master.close()


def save(path, text):
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    os.replace(partial, path)


def test_a_failing_layer_keeps_the_whole_merge_until_it_is_good_again(
    etcd, tmp_path, masters
):
    a = tmp_path / "a.yaml"
    a.write_text("a: one\nshared: file\n")
    etcd.put(KEY, "b: one\nshared: etcd\n")
    master = masters(f"{a} | {etcd.source(KEY)}")
    master.start()
    master.wait("started", a="one", b="one", shared="etcd")
    generation = master.publisher.generation

    deleted_at = etcd.ctl("del", KEY) and etcd.revision()
    deleted = (
        f"layer 2 of 2 ({etcd.source(KEY)}): key {KEY} was deleted at revision "
        f"{deleted_at}"
    )
    wait_for(lambda: master.error() == deleted, "the deletion refused")

    # A's change meets the broken etcd layer. First an invalid A, so that the
    # refusal names both layers: proof that the watcher read A...
    save(a, "a: [unclosed\n")
    wait_for(lambda: "; also layer 2 of 2" in master.error(), "both layers refused")
    assert master.error().startswith(f"layer 1 of 2 ({a}:")
    # ...then the valid change: the refusal names etcd alone again, so this A
    # was read, and none of it is published while etcd is broken.
    save(a, "a: two\nshared: file\n")
    wait_for(lambda: master.error() == deleted, "the valid A read, etcd refused")
    assert master.publisher.generation == generation
    assert master.live().get("a") == "one"

    # etcd good again: both changes arrive together, in one generation.
    etcd.put(KEY, "b: two\nshared: etcd2\n")
    wait_for(lambda: master.publisher.generation > generation, "the next publish")
    live = master.live()
    assert live.generation == generation + 1
    assert (live["a"], live["b"], live["shared"]) == ("two", "two", "etcd2")
    assert master.error() == ""


def test_an_unreachable_etcd_layer_at_boot_serves_the_cache(etcd, tmp_path, masters):
    a = tmp_path / "a.yaml"
    a.write_text("a: one\n")
    etcd.put(KEY, "b: one\n")
    source = f"{a} | {etcd.source(KEY)}"
    first = masters(source, keep_history=True, name="cold")
    assert first.start() == 1
    cache = first.publisher.cache_path
    first.close()
    etcd.stop()

    master = masters(source, keep_history=True, name="cold")
    assert master.publisher.cache_path == cache
    assert master.start() is not None
    assert (master.live()["a"], master.live()["b"]) == ("one", "one")
    header = layout.read_header(master.segment.buffer)
    assert header.source == f"cache:file:{a} | {etcd.source(KEY)}"
    assert header.error.startswith(
        f"layer 2 of 2 ({etcd.source(KEY)}): etcd unreachable"
    )
    assert "serving the cache from" in header.error
    assert master.explain("b")["from"] == [
        f"the cache file {cache} (published at start)"
    ]

    etcd.start()  # same data and ports
    etcd.put(KEY, "b: live\n")
    master.wait("etcd back", a="one", b="live")
    assert master.explain("b")["from"] == [etcd.source(KEY)]


def test_the_cache_and_a_rollback_take_the_overrides_of_the_master_now(etcd, masters):
    """The cache and the history keep the source's content without the
    overrides: a master restarted with another override while etcd is down
    serves its own override over the cache, and so does its rollback."""
    source = etcd.source(KEY)
    etcd.put(KEY, "db:\n  timeout: 9\n  host: one\n")
    first = masters(source, {"HOTCFG_SET__DB__TIMEOUT": "1"}, keep_history=True)
    first.start()
    first.wait("started", db={"timeout": 1, "host": "one"})
    etcd.put(KEY, "db:\n  timeout: 9\n  host: two\n")
    first.wait("etcd's change", db={"timeout": 1, "host": "two"})
    first.close()
    etcd.stop()

    master = masters(source, {"HOTCFG_SET__DB__TIMEOUT": "2"}, keep_history=True)
    assert master.start() == 3
    assert master.live()["db"] == {"timeout": 2, "host": "two"}
    cache = f"the cache file {master.publisher.cache_path} (published at start)"
    answer = master.explain("db.timeout")
    assert answer["from"] == ["environment HOTCFG_SET__DB__TIMEOUT"]
    assert [(e["layer"], e["state"], e.get("value")) for e in answer["layers"]] == [
        ("environment HOTCFG_SET__DB__TIMEOUT", "from", 2),
        (cache, "under", 9),
    ]
    assert master.explain("db.host")["from"] == [cache]

    rolled = _control.handle(master.publisher, {"cmd": "rollback", "to": 1})
    assert rolled["generation"] == 4
    assert master.live()["db"] == {"timeout": 2, "host": "one"}
    assert master.explain("db.timeout")["layers"][1] == {
        "layer": "rollback to generation 1",
        "state": "under",
        "value": 9,
    }
    # What is kept is still without the override.
    kept = master.publisher.history.find(4)
    assert _payload.decode_payload(kept.document)["db"] == {"timeout": 9, "host": "one"}
    assert _payload.decode_payload(kept.payload)["db"] == {"timeout": 2, "host": "one"}


def test_an_old_cache_file_starts_a_master_with_its_overrides_on_top(etcd, masters):
    """A cache written before the base was kept apart (version 1) holds the
    overrides of its time: it is served, today's overrides on top."""
    source = etcd.source(KEY)
    etcd.put(KEY, "value: cached\n")
    first = masters(source, {"HOTCFG_SET__DB__TIMEOUT": "1"}, keep_history=True)
    first.start()
    path = first.publisher.cache_path
    first.close()
    etcd.stop()
    payload = _payload.encode({"value": "cached", "db": {"timeout": 1}})
    old = Entry.of(7, payload, published_at=1.0, source=source)
    fields = ("generation", "published_at", "source", "size", "hash", "payload")
    _history.write_private(
        path,
        msgpack.packb(
            {
                "format": coldstart.FORMAT,
                "version": 1,
                "entries": [{name: getattr(old, name) for name in fields}],
            }
        ),
    )

    master = masters(source, {"HOTCFG_SET__DB__TIMEOUT": "2"}, keep_history=True)
    assert master.start() == 2  # numbered on from the history
    assert master.publisher.from_cache == old
    assert dict(master.live()) == {"value": "cached", "db": {"timeout": 2}}


def test_a_bad_file_layer_with_etcd_down_refuses_rather_than_serve_the_cache(
    etcd, tmp_path, masters
):
    a = tmp_path / "a.yaml"
    a.write_text("a: one\n")
    etcd.put(KEY, "b: one\n")
    source = f"{a} | {etcd.source(KEY)}"
    first = masters(source, keep_history=True, name="cold")
    first.start()
    first.close()
    etcd.stop()
    a.unlink()

    master = masters(source, keep_history=True, name="cold")
    with pytest.raises(SourceError) as refused:
        master.publisher.start()
    assert not isinstance(refused.value, UnreachableError)
    assert str(refused.value) == (
        f"layer 1 of 2 ({a}): file not found; also layer 2 of 2 "
        f"({etcd.source(KEY)}): etcd unreachable: {etcd.endpoint}: "
        + str(refused.value).split(f"etcd unreachable: {etcd.endpoint}: ", 1)[1]
    )


def test_every_layer_is_watched_and_the_environment_always_wins(tmp_path, masters):
    base, prod = tmp_path / "base.yaml", tmp_path / "prod.json"
    base.write_text("db:\n  timeout: 1\n  host: base\nvalue: base\n")
    prod.write_text('{"db": {"host": "prod"}}')
    master = masters(
        f"{base} | {prod}",
        {"HOTCFG_SET__DB__TIMEOUT": "5", "HOTCFG_SET__LOG_LEVEL": "debug"},
    )
    threads_before = set(threading.enumerate())
    master.start()
    master.wait("started", value="base", log_level="debug")
    assert master.live()["db"] == {"timeout": 5, "host": "prod"}

    save(prod, '{"db": {"host": "prod2", "timeout": 3}}')
    wait_for(lambda: master.live()["db"]["host"] == "prod2", "prod's change")
    assert master.live()["db"]["timeout"] == 5
    save(base, "db:\n  timeout: 2\n  port: 5432\nvalue: base2\n")
    master.wait("base's change", value="base2")
    assert master.live()["db"] == {"timeout": 5, "host": "prod2", "port": 5432}

    # Closing stops every layer's watch.
    master.close()
    wait_for(
        lambda: (
            not [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
        ),
        "every watcher thread gone",
    )


def test_explain_follows_the_live_generation(tmp_path, masters):
    base, prod = tmp_path / "base.yaml", tmp_path / "prod.yaml"
    base.write_text("db:\n  timeout: 1\n  host: base\n")
    prod.write_text("db:\n  host: prod\n")
    master = masters(
        f"{base} | {prod}", {"HOTCFG_SET__DB__TIMEOUT": "5"}, keep_history=True
    )
    master.start()
    master.wait("started", **{"db.host": "prod"})
    answer = master.explain("db.timeout")
    assert answer["generation"] == 1
    assert answer["value"] == 5
    assert answer["from"] == ["environment HOTCFG_SET__DB__TIMEOUT"]
    assert [(e["layer"], e["state"], e.get("value")) for e in answer["layers"]] == [
        ("environment HOTCFG_SET__DB__TIMEOUT", "from", 5),
        (str(prod), "unset", None),
        (str(base), "under", 1),
    ]
    assert master.explain("db")["keys"] == {
        "host": [str(prod)],
        "timeout": ["environment HOTCFG_SET__DB__TIMEOUT"],
    }

    # The same merged content from other layers: no new generation, but
    # the explanation follows the documents.
    save(base, "db:\n  timeout: 1\n  host: prod\n")
    save(prod, "db: {}\n")
    wait_for(
        lambda: master.explain("db.host")["from"] == [str(base)],
        "the host explained by base",
    )
    assert master.publisher.generation == 1

    save(prod, "db:\n  host: two\n")
    master.wait("prod's change", **{"db.host": "two"})
    assert master.explain("db.host")["from"] == [str(prod)]

    rolled = _control.handle(master.publisher, {"cmd": "rollback"})
    master.wait("rolled back", **{"db.host": "prod"})
    answer = master.explain("db.host")
    assert answer["generation"] == rolled["generation"]
    assert answer["from"] == [f"rollback to generation {rolled['from']}"]
    assert answer["value"] == "prod"

    save(prod, "db:\n  host: three\n")
    master.wait("the next change", **{"db.host": "three"})
    assert master.explain("db.host")["from"] == [str(prod)]
    assert not master.explain("db.nothing")["found"]


def test_a_layer_error_names_the_layer_and_the_place(tmp_path):
    base, prod = tmp_path / "base.yaml", tmp_path / "prod.toml"
    base.write_text("a: 1\n")
    prod.write_text("a = [\n")
    source = source_for(Settings.resolve({}, source=f"{base} | {prod}"), environ={})
    with pytest.raises(ConfigError, match=r"^layer 2 of 2 \(.*prod\.toml:\d+:\d+\): "):
        source.load()
    assert source.loaded is None  # nothing kept from a failed load
    prod.write_text("a = 2\n")
    assert source.load() == {"a": 2}
    assert source.label == f"file:{base} | file:{prod}"
    assert source.location == f"{base} | {prod}"
    assert source.fmt == "yaml+toml"


def test_explain_needs_the_master_control_socket_and_says_so(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("a: 1\n")
    settings = Settings.resolve({}, source=str(config))
    segment = Segment.create(os.environ["HOTCFG_SEGMENT_DIR"], name="plain")
    publisher = Publisher(
        source_for(settings, environ={}), segment, settings, keep_history=False
    )
    try:
        publisher.start()
        assert main(["get", "--explain", "a"]) == 69
        err = capsys.readouterr().err
        assert "no control socket at" in err
        assert "--explain asks the master" in err

        # One plain source: the value comes from it.
        _control.start(publisher)
        assert main(["get", "--explain", "a"]) == 0
        assert capsys.readouterr().out.splitlines() == ["a = 1", f"  from   {config}"]
    finally:
        publisher.close()
    assert main(["get", "--explain", "a"]) == 69
    assert "no running hotcfg service" in capsys.readouterr().err
