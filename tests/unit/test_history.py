"""The history file's codec: what was written reads back, and any other
bytes are refused (CorruptHistoryError), never half-trusted."""

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotcfg._errors import ConfigError, CorruptHistoryError
from hotcfg._master import history as _history
from hotcfg._master.history import Entry, decode_entries, encode_entries, trim
from hotcfg._settings import Settings


@st.composite
def histories(draw):
    gens = sorted(draw(st.sets(st.integers(1, 2**63 - 1), max_size=8)))
    return [
        Entry.of(
            g,
            draw(st.binary(max_size=200)),
            published_at=draw(st.floats(0, 4e9)),
            source=draw(st.text(max_size=40)),
            base=draw(st.none() | st.binary(max_size=100)),
        )
        for g in gens
    ]


@given(histories())
def test_entries_round_trip(entries):
    assert decode_entries(encode_entries(entries)) == entries


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_any_bytes_give_entries_or_a_corrupt_history_error(data):
    try:
        entries = decode_entries(data)
    except CorruptHistoryError:
        return
    assert all(isinstance(e, Entry) for e in entries)


@given(histories().filter(bool), st.data())
def test_truncation_and_flipped_bytes_are_refused(entries, data):
    encoded = encode_entries(entries)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(CorruptHistoryError):
        decode_entries(encoded[:cut])
    # A flipped byte inside a payload fails its hash. Each entry's payload is
    # its map's last value: the key "payload", a bin8 header, the bytes.
    index = data.draw(st.integers(0, len(entries) - 1))
    if entries[index].payload:
        starts, at = [], -1
        while (at := encoded.find(b"\xa7payload", at + 1)) >= 0:
            starts.append(at + 8 + 2)
        at = starts[index] + data.draw(st.integers(0, entries[index].size - 1))
        flipped = bytearray(encoded)
        flipped[at] ^= 0x01
        with pytest.raises(CorruptHistoryError, match="does not match"):
            decode_entries(bytes(flipped))


def test_out_of_order_generations_and_foreign_documents_are_refused():
    a = Entry.of(2, b"\x80", published_at=1.0, source="s")
    b = Entry.of(1, b"\x80", published_at=2.0, source="s")
    with pytest.raises(CorruptHistoryError, match="increasing"):
        decode_entries(encode_entries([a, b]))
    with pytest.raises(CorruptHistoryError, match="not a hotcfg history"):
        decode_entries(msgpack.packb({"entries": []}))
    with pytest.raises(CorruptHistoryError, match="version"):
        decode_entries(msgpack.packb({"format": _history.FORMAT, "version": 99}))
    with pytest.raises(CorruptHistoryError, match="more than"):
        decode_entries(b"\x00" * 11, max_bytes=10)


def test_trim_keeps_the_newest_within_count_and_size():
    entries = [Entry.of(g, bytes(100), published_at=0, source="") for g in range(1, 8)]
    assert [e.generation for e in trim(entries, keep=3)] == [5, 6, 7]
    assert trim(entries, keep=0) == []
    assert [e.generation for e in trim(entries, keep=10, max_bytes=500)] == [6, 7]


def test_history_setting_is_parsed_with_the_others():
    assert Settings.resolve({}).history == 10
    assert Settings.resolve({"HOTCFG_HISTORY": "3"}).history == 3
    assert Settings.resolve({}, history=0).history == 0
    for bad in ("-1", "ten", "1001"):
        with pytest.raises(ConfigError, match=r"^HOTCFG_HISTORY: invalid value"):
            Settings.resolve({"HOTCFG_HISTORY": bad})


def test_a_base_is_kept_checked_and_published_again():
    """The base (the document before the overrides) is what a rollback and a
    cold start publish again; the payload is what was published."""
    plain = Entry.of(1, b"\x81\xa1a\x01", published_at=1.0, source="s")
    assert plain.base is None
    assert plain.document == plain.payload
    same = Entry.of(2, b"\x80", published_at=1.0, source="s", base=b"\x80")
    assert same.base is None  # no override changed anything: kept once
    based = Entry.of(3, b"\x81\xa1a\x02", published_at=1.0, source="s", base=b"\x80")
    assert based.document == b"\x80"
    assert based.stored_bytes == based.size + 1
    encoded = encode_entries([plain, based])
    assert decode_entries(encoded) == [plain, based]
    at = encoded.rindex(b"\xa4base\xc4\x01\x80") + 7
    flipped = encoded[:at] + b"\x81" + encoded[at + 1 :]
    with pytest.raises(CorruptHistoryError, match="base does not match its hash"):
        decode_entries(flipped)


def test_a_version_1_file_is_read_its_payloads_as_their_bases():
    """Written before the base was kept: each payload, overrides of its time
    included, is what is published again (today's overrides on top)."""
    entry = Entry.of(4, b"\x80", published_at=1.0, source="s")
    fields = ("generation", "published_at", "source", "size", "hash", "payload")
    old = msgpack.packb(
        {
            "format": _history.FORMAT,
            "version": 1,
            "entries": [{name: getattr(entry, name) for name in fields}],
        }
    )
    assert decode_entries(old) == [entry]
    assert decode_entries(old)[0].document == b"\x80"
    with pytest.raises(CorruptHistoryError, match="not a history entry"):
        decode_entries(
            msgpack.packb(
                {"format": _history.FORMAT, "version": 2, "entries": [
                    {name: getattr(entry, name) for name in fields}
                ]}
            )
        )  # fmt: skip


texts = st.none() | st.text(min_size=1, max_size=60)


@given(histories(), st.lists(st.tuples(texts, texts, texts), min_size=8, max_size=8))
def test_who_made_each_entry_round_trips(entries, who):
    entries = [
        Entry.of(
            e.generation,
            e.payload,
            published_at=e.published_at,
            source=e.source,
            base=e.base,
            action=action,
            author=author,
            message=message,
        )
        for e, (action, author, message) in zip(entries, who, strict=False)
    ]
    decoded = decode_entries(encode_entries(entries))
    assert decoded == entries
    assert [(e.action, e.author, e.message) for e in decoded] == [
        w for w, _ in zip(who, entries, strict=False)
    ]


def _packed(version, entry_fields):
    return msgpack.packb(
        {"format": _history.FORMAT, "version": version, "entries": [entry_fields]}
    )


def test_a_version_2_file_is_read_without_who_and_version_3_stays_strict():
    entry = Entry.of(4, b"\x80", published_at=1.0, source="s", base=b"\x81")
    v2 = {name: getattr(entry, name) for name in _history._FIELDS_V2}
    assert decode_entries(_packed(2, v2)) == [entry]
    assert decode_entries(_packed(2, v2))[0].author is None
    # Who made it is only in version 3, and only text there.
    with pytest.raises(CorruptHistoryError, match="not a history entry"):
        decode_entries(_packed(2, {**v2, "author": "ann"}))
    assert decode_entries(_packed(3, {**v2, "author": "ann"}))[0].author == "ann"
    with pytest.raises(CorruptHistoryError, match="wrong type"):
        decode_entries(_packed(3, {**v2, "message": 7}))
    with pytest.raises(CorruptHistoryError, match="not a history entry"):
        decode_entries(_packed(3, {**v2, "who": "ann"}))


def test_a_long_author_or_message_is_cut():
    entry = Entry.of(
        1, b"\x80", published_at=1.0, source="s", author="a" * 5000, message="m" * 5000
    )
    assert len(entry.author) == len(entry.message) == _history.TEXT_MAX_CHARS
    assert entry.describe()["author"] == entry.author
