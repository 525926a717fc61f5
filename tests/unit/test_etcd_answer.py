"""etcd's gateway answers read in bounded memory (pure: ``_etcd_answer``):
long strings left out with their decoded size, lines over the budget
reported by size, the rest exactly as sent, however the bytes are split."""

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from hotcfg._sources.etcd.answer import (
    Elided,
    Garbled,
    LineReader,
    Overflow,
    base64_length,
    decoded,
    header_of,
)

LIMIT = 40


def chunked(data, cuts):
    """``data`` split at the (sorted, deduplicated) offsets ``cuts``."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def read_all(data, cuts, *, string_limit=LIMIT, budget=10_000):
    reader = LineReader(string_limit=string_limit, budget=budget)
    lines = []
    for chunk in chunked(data, cuts):
        lines += reader.feed(chunk)
    last = reader.end()
    return lines + ([] if last is None else [last])


texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=2 * LIMIT)
values = st.binary(max_size=3 * LIMIT)
events = st.lists(
    st.fixed_dictionaries(
        {"kv": st.fixed_dictionaries({"key": values, "value": values}), "m": texts}
    ),
    max_size=4,
)
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=8)


def encoded(event):
    kv = {k: base64.b64encode(v).decode() for k, v in event["kv"].items()}
    return {"kv": kv, "m": event["m"]}


@given(st.lists(events, min_size=1, max_size=3), cuts)
def test_every_line_reads_back_with_long_strings_left_out_by_size(lines, cuts):
    sent = [{"result": {"events": [encoded(e) for e in line]}} for line in lines]
    data = b"".join(json.dumps(m).encode() + b"\n" for m in sent)
    read = read_all(data, cuts)
    assert len(read) == len(lines)
    for got, line in zip(read, lines, strict=True):
        assert isinstance(got, bytes)
        result = json.loads(got)["result"]["events"]
        for event, original in zip(result, line, strict=True):
            for name, raw in original["kv"].items():
                field = decoded(event["kv"][name])
                if base64_length(len(raw)) <= LIMIT:
                    assert field == raw
                else:
                    assert isinstance(field, Elided)
                    assert field.size == len(raw)
            text = original["m"]
            if len(json.dumps(text)) - 2 <= LIMIT:  # as sent, escapes and all
                assert event["m"] == text


def test_two_long_values_of_one_size_are_told_apart():
    a, b = (base64.b64encode(bytes([n]) * 100).decode() for n in (1, 2))
    data = json.dumps({"a": a, "b": b, "c": a}).encode()
    [line] = read_all(data, [7, 50, 51])
    got = {k: decoded(v) for k, v in json.loads(line).items()}
    assert got["a"] == got["c"] != got["b"]
    assert got["a"].size == got["b"].size == 100


def test_a_line_over_the_budget_is_its_size_and_the_next_line_reads():
    header = {"header": {"revision": "42"}}
    big = json.dumps({**header, "kvs": [{"k": "ab"} for _ in range(100)]}).encode()
    small = json.dumps(header).encode()
    data = big + b"\n" + small + b"\n"
    over, after = read_all(data, [3, 500], budget=200)
    assert over == Overflow(len(big), big[:200])
    assert header_of(over.head) == {"revision": "42"}
    assert json.loads(after) == header


def test_an_answer_without_a_newline_is_read_at_its_end():
    reader = LineReader(string_limit=LIMIT, budget=1000)
    assert reader.feed(b'{"error": "etcdserver: no leader"') == []
    assert reader.pending
    assert reader.end() == b'{"error": "etcdserver: no leader"'
    assert reader.end() is None


def test_not_base64_is_garbled_not_an_error():
    assert isinstance(decoded("not base64!"), Garbled)
    assert isinstance(decoded(17), Garbled)
    assert decoded("not base64!") == decoded("not base64!") != decoded("other?")
    assert decoded("") == b""


def test_a_header_is_found_only_where_etcd_puts_it():
    assert header_of(b'{"result":{"header":{"revision":"7"},"events":[') == {
        "revision": "7"
    }
    assert header_of(b'{"kvs":[],"header":{"revision":"7"}}') is None
    assert header_of(b'{"header":{"revi') is None
