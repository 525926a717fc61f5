import pytest

from hotcfg._content.loaders import format_for, parse
from hotcfg._content.validate import check_document
from hotcfg._errors import ConfigError, ParseError, ValidationError
from hotcfg._sources.files import load_document


def load(text, fmt="yaml"):
    return load_document(text.encode(), fmt=fmt, source="cfg")


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("yaml", "a: 1\nb: [x, y]\n"),
        ("json", '{"a": 1, "b": ["x", "y"]}'),
        ("toml", 'a = 1\nb = ["x", "y"]\n'),
    ],
)
def test_every_format_loads(fmt, text):
    assert load(text, fmt) == {"a": 1, "b": ["x", "y"]}


@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        ("yaml", "a: 1\nb: [\n", 3),
        ("json", '{"a": 1,\n "b": }', 2),
        ("toml", "a = 1\nb = = 2\n", None),
    ],
)
def test_syntax_errors_name_the_place(fmt, text, line):
    with pytest.raises(ParseError) as info:
        load(text, fmt)
    assert info.value.source == "cfg"
    if line is not None:
        assert info.value.line == line
    assert "cfg" in str(info.value)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [("yaml", "a: 1\na: 2\n"), ("json", '{"a": 1, "a": 2}')],
)
def test_duplicate_keys_rejected(fmt, text):
    with pytest.raises(ParseError, match="duplicate key"):
        load(text, fmt)


@pytest.mark.parametrize(
    "text", ["", "   \n", "# only a comment\n", "null", "- a\n", "3"]
)
def test_top_level_must_be_a_mapping(text):
    with pytest.raises(ConfigError):
        load(text)


def test_unsafe_yaml_tag_rejected():
    with pytest.raises(ParseError):
        load("a: !!python/object/apply:os.system ['true']\n")


def test_secret_not_echoed_in_errors():
    with pytest.raises(ConfigError) as info:
        load("password: hunter2\nbad: [\n")
    assert "hunter2" not in str(info.value)


def test_alias_bomb_rejected():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        bomb += f"{cur}: &{cur} [{', '.join(['*' + prev] * 10)}]\n"
    with pytest.raises(ValidationError, match="alias bomb"):
        load(bomb)


def test_values_msgpack_cannot_carry_rejected():
    with pytest.raises(ValidationError, match="when"):
        load("when: 2024-01-01\n")
    with pytest.raises(ValidationError, match="big"):
        load(f"big: {2**64}\n")


def test_non_string_keys_rejected():
    with pytest.raises(ValidationError):
        check_document({1: "a"})


def test_bad_utf8_and_nul():
    with pytest.raises(ParseError, match="UTF-8"):
        parse(b"a: \xff\n", fmt="yaml", source="cfg")
    with pytest.raises(ParseError, match="NUL"):
        parse(b"a: 1\x00\n", fmt="yaml", source="cfg")


def test_bom_accepted():
    assert parse(b"\xef\xbb\xbfa: 1\n", fmt="yaml", source="cfg") == {"a": 1}


def test_format_by_suffix():
    assert format_for("x.yml") == "yaml"
    assert format_for("x.JSON") == "json"
    assert format_for("x.toml") == "toml"
    with pytest.raises(ParseError):
        format_for("x.ini")
