"""The records of a staged rollout on an etcd key: the keys beside it, the
canary and audit codecs, and which hosts a selector picks."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotcfg._errors import ConfigError
from hotcfg._sources.etcd.rollout import (
    Audit,
    Canary,
    Selector,
    audit_key,
    bucket,
    canary_key,
    watch_range,
)

labels = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=40,
).filter(lambda s: "," not in s and not any(c.isspace() for c in s))


def test_the_canary_and_the_audit_keys_sort_inside_the_watched_range():
    start, end = watch_range("/app/config")
    assert start == b"/app/config"
    for key in (canary_key("/app/config"), audit_key("/app/config")):
        assert start <= key.encode() < end
    # Keys of other services and the key's own children stay out.
    for other in ("/app/config/db", "/app/config.bak", "/app/config2", "/app/confih"):
        assert not start <= other.encode() < end


def test_a_named_selector_picks_exactly_its_hosts():
    selector = Selector.parse(" web-1, web-2 ,web-1")
    assert selector.hosts == ("web-1", "web-2")
    assert selector.selects("web-1")
    assert selector.selects("web-2")
    assert not selector.selects("web-3")
    assert not selector.selects("web-10")
    assert selector.describe() == "web-1,web-2"


@pytest.mark.parametrize("bad", ["", " , ", "0%", "-5%", "101%", "x%", "nan%", "a b"])
def test_a_selector_that_picks_nothing_sensible_is_refused(bad):
    with pytest.raises(ConfigError):
        Selector.parse(bad)


def test_a_percentage_picks_about_that_share_of_many_hosts_and_the_same_ones():
    hosts = [f"web-{n}" for n in range(10_000)]
    picked = [h for h in hosts if Selector.parse("10%").selects(h)]
    assert 850 < len(picked) < 1150
    # Stable: a second parse (another process, another day) picks the same.
    assert picked == [h for h in hosts if Selector(percent=10.0).selects(h)]
    # Growing the percentage keeps the hosts already picked.
    assert set(picked) <= {h for h in hosts if Selector(percent=25.0).selects(h)}
    assert all(Selector.parse("100%").selects(h) for h in hosts[:100])


def test_the_bucket_is_fixed_by_the_label_alone():
    # Pinned: a change of hash would move every fleet's canary hosts.
    assert f"{bucket('web-1'):.6f}" == "76.735848"
    assert f"{bucket('h1'):.6f}" == "19.948094"
    assert Selector(percent=20.0).selects("h1")
    assert not Selector(percent=19.9).selects("h1")


@given(
    hosts=st.lists(labels, min_size=1, max_size=5, unique=True),
    content=st.text(max_size=200),
    base=st.integers(min_value=0, max_value=2**62),
    author=st.text(max_size=50),
    message=st.text(max_size=50),
)
def test_a_canary_record_reads_back_as_written(hosts, content, base, author, message):
    canary = Canary(
        Selector(hosts=tuple(hosts)), content.encode(), base, author, message, 12.5
    )
    assert Canary.decode(canary.encode()) == canary


@given(percent=st.floats(min_value=0.001, max_value=100))
def test_a_percentage_canary_reads_back_as_written(percent):
    canary = Canary(Selector(percent=percent), b"a: 1\n")
    assert Canary.decode(canary.encode()).selector == Selector(percent=percent)


def test_a_canary_of_bytes_that_are_no_text_is_refused_when_written():
    with pytest.raises(ConfigError, match="UTF-8"):
        Canary(Selector(hosts=("h1",)), b"\xff\xfe").encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"format": "hotcfg-canary", "version": 2}',
        json.dumps(
            {"format": "hotcfg-canary", "version": 1, "content": 3, "selector": {}}
        ).encode(),
        json.dumps(
            {
                "format": "hotcfg-canary",
                "version": 1,
                "content": "a: 1",
                "selector": {"hosts": []},
            }
        ).encode(),
        json.dumps(
            {
                "format": "hotcfg-canary",
                "version": 1,
                "content": "a: 1",
                "selector": {"percent": 0},
            }
        ).encode(),
        json.dumps(
            {
                "format": "hotcfg-canary",
                "version": 1,
                "content": "a: 1",
                "selector": {"hosts": ["h1"]},
                "base_revision": -1,
            }
        ).encode(),
    ],
)
def test_a_value_that_is_no_canary_record_is_refused_with_a_reason(raw):
    with pytest.raises(ValueError, match=r"canary record|selector"):
        Canary.decode(raw)


def test_an_audit_record_reads_back_and_refuses_unknown_actions():
    audit = Audit("promote", "ann@ops", "rate limit up", 3.0, ("limits.rate",), "")
    assert Audit.decode(audit.encode()) == audit
    bad = json.loads(audit.encode())
    bad["action"] = "delete"
    with pytest.raises(ValueError, match="unknown"):
        Audit.decode(json.dumps(bad).encode())


def test_long_texts_are_cut_not_refused():
    audit = Audit("push", "a" * 5000, "m" * 5000)
    back = Audit.decode(audit.encode())
    assert len(back.author) == 1024
    assert len(back.message) == 1024


def test_a_bad_selector_is_named_by_its_shape_never_its_content():
    raw = {
        "format": "hotcfg-canary",
        "version": 1,
        "content": "a: 1",
        "selector": {"hosts": "s3cret" * 1000},
    }
    with pytest.raises(ValueError, match="selector") as caught:
        Canary.decode(json.dumps(raw).encode())
    assert "s3cret" not in str(caught.value)
    assert len(str(caught.value)) <= 200


def test_an_audit_record_keeps_its_paths_short():
    audit = Audit("push", "ann", paths=tuple("p" * 5000 + str(n) for n in range(500)))
    back = Audit.decode(audit.encode())
    assert len(back.paths) == 100
    assert all(len(path) == 200 for path in back.paths)
    assert len(audit.encode()) < 64 * 1024
