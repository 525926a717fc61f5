"""Layers, pure: splitting HOTCFG_SOURCE, the merge rule, provenance, the
HOTCFG_SET__ overrides and what ``hotcfg get --explain`` prints."""

import copy

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hotcfg._content.layers import (
    BLOCKED,
    MISSING,
    SET,
    Layer,
    environment_layer,
    explain,
    join_sources,
    merge,
    override_document,
    overrides_from,
    path_for,
    render,
    split_sources,
    trace,
    variable_for,
    with_overrides,
)
from hotcfg._errors import ConfigError, ParseError, ValidationError
from hotcfg._settings import Settings, layer_settings
from tests.unit.test_import_purity import IMPURE, loaded_after

KEYS = st.sampled_from(["a", "b", "c"])
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=2),
    st.lists(st.integers(0, 2), max_size=2),
)  # fmt: skip
DOCS = st.recursive(
    st.dictionaries(KEYS, LEAVES, max_size=3),
    lambda inner: st.dictionaries(KEYS, st.one_of(LEAVES, inner), max_size=3),
    max_leaves=8,
)
LAYERS = st.lists(DOCS, min_size=1, max_size=4)
# Documents that agree on which keys hold mappings ("m", "n") and which hold
# values ("a", "b"), each key there about half the time: no layer replaces a
# mapping with a value, and layers overlap often.
SHAPED = st.recursive(
    st.fixed_dictionaries({}, optional={"a": LEAVES, "b": LEAVES}),
    lambda inner: st.fixed_dictionaries(
        {}, optional={"a": LEAVES, "b": LEAVES, "m": inner, "n": inner}
    ),
    max_leaves=8,
)
PATHS = st.lists(KEYS, min_size=1, max_size=4).map(tuple)
# No timing in the tests: the machine running them may be busy.
untimed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def lookup(document, path):
    node = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def paths_of(document, prefix=()):
    """Every key path of ``document``, mappings and leaves."""
    for key, value in document.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from paths_of(value, (*prefix, key))


def leaves_of(document):
    return [p for p in paths_of(document) if not isinstance(lookup(document, p), dict)]


# -- merging ------------------------------------------------------------------


@settings(untimed, max_examples=300)
@given(SHAPED, SHAPED, SHAPED)
@example({"m": {"a": 0}}, {"m": {}}, {"m": {"a": 2}})  # a key the middle lacks
def test_merge_is_associative_on_mappings(a, b, c):
    left = merge([merge([a, b]), c])
    assert left == merge([a, merge([b, c])])
    assert left == merge([a, b, c])


@untimed
@given(DOCS, DOCS, DOCS)
def test_merging_layers_is_a_left_fold(a, b, c):
    assert merge([a, b, c]) == merge([merge([a, b]), c])


def test_grouping_matters_once_a_layer_replaces_a_mapping_with_a_value():
    # b resets "a" to a value and c makes it a mapping again: merged left to
    # right, a's keys are gone; b and c merged first forget the reset. So
    # hotcfg merges in the documented order, left to right, never in groups.
    a, b, c = {"a": {"x": 1}}, {"a": None}, {"a": {}}
    assert merge([merge([a, b]), c]) == merge([a, b, c]) == {"a": {}}
    assert merge([a, merge([b, c])]) == {"a": {"x": 1}}


@untimed
@given(LAYERS, PATHS)
def test_the_last_layer_with_anything_at_or_above_a_path_decides_it(docs, path):
    merged = merge(docs)
    deciding = [
        (i, trace([doc], path).states[0])
        for i, doc in enumerate(docs)
        if trace([doc], path).states[0].kind in (SET, BLOCKED)
    ]
    if not deciding:
        assert lookup(merged, path) is MISSING
        return
    _, state = deciding[-1]
    if state.kind == BLOCKED:  # a non-mapping above the path replaced it
        assert lookup(merged, path) is MISSING
    elif not isinstance(state.value, dict):  # a non-mapping wins whole
        assert lookup(merged, path) == state.value


@untimed
@given(LAYERS)
def test_provenance_names_the_last_layer_defining_a_leaf(docs):
    merged = merge(docs)
    for path in leaves_of(merged):
        defining = [i for i, doc in enumerate(docs) if lookup(doc, path) is not MISSING]
        traced = trace(docs, path)
        assert traced.contributors == (defining[-1],)
        assert traced.value == lookup(merged, path) == lookup(docs[defining[-1]], path)


@untimed
@given(LAYERS, st.lists(PATHS, max_size=3))
def test_trace_gives_what_merge_gives_at_every_path(docs, extra):
    merged = merge(docs)
    paths = {p for doc in docs for p in paths_of(doc)} | set(extra)
    for path in paths:
        traced = trace(docs, path)
        assert traced.value == lookup(merged, path)
        if isinstance(traced.value, dict):
            # A mapping is the merge of its contributors' mappings there.
            parts = [lookup(docs[i], path) for i in traced.contributors]
            assert all(isinstance(p, dict) for p in parts)
            assert merge(parts) == traced.value


@untimed
@given(LAYERS)
def test_merge_neither_changes_nor_shares_the_documents(docs):
    before = copy.deepcopy(docs)
    merged = merge(docs)
    assert docs == before

    def scribble(node):
        for key, value in list(node.items()):
            if isinstance(value, dict):
                scribble(value)
            elif isinstance(value, list):
                value.append("x")
            node[key + "!"] = 0

    scribble(merged)  # a validator changing its argument in place
    assert docs == before


def test_mappings_merge_deep_and_anything_else_is_replaced():
    base = {"db": {"host": "a", "pool": {"min": 1, "max": 5}}, "hosts": ["x", "y"]}
    top = {"db": {"pool": {"max": 9}}, "hosts": ["z"], "name": "n"}
    assert merge([base, top]) == {
        "db": {"host": "a", "pool": {"min": 1, "max": 9}},
        "hosts": ["z"],
        "name": "n",
    }
    # A mapping meeting a non-mapping: the later one, whole.
    assert merge([{"db": {"host": "a"}}, {"db": "sqlite"}]) == {"db": "sqlite"}
    assert merge([{"db": "sqlite"}, {"db": {"host": "b"}}]) == {"db": {"host": "b"}}


# -- splitting ----------------------------------------------------------------

PART = st.text(
    st.characters(blacklist_characters="|", blacklist_categories=["Cs"]), min_size=1
).filter(lambda s: s.strip() == s and s)


@untimed
@given(st.lists(PART, min_size=2, max_size=4))
def test_split_undoes_join(parts):
    assert split_sources(join_sources(parts)) == parts


def test_split_takes_optional_spaces_around_the_separator_only():
    assert split_sources("a.yaml|b.yaml") == ["a.yaml", "b.yaml"]
    assert split_sources("conf/a.yaml  |\tetcd://h:1,h:2/k.yaml") == [
        "conf/a.yaml",
        "etcd://h:1,h:2/k.yaml",
    ]
    # One source is kept exactly, spaces and all, as before layers.
    assert split_sources(" my config.yaml ") == [" my config.yaml "]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("a.yaml |", "layer 2 of 2 is empty"), ("| a.yaml | b", "layer 1 of 3 is empty")],
)
def test_an_empty_layer_is_refused_naming_it(text, reason):
    with pytest.raises(ValueError, match=reason):
        split_sources(text)


def test_settings_normalise_each_layer_as_a_single_source(tmp_path):
    settings = Settings.resolve(
        {"HOTCFG_SOURCE": "conf/base.yaml | /srv/prod.json|etcd://h:2379/app/c.toml"},
        base_dir=str(tmp_path),
    )
    assert settings.source == (
        f"{tmp_path}/conf/base.yaml | /srv/prod.json | etcd://h:2379/app/c.toml"
    )
    assert settings.format is None  # each layer has its own
    layers = layer_settings(settings)
    assert [(s.source, s.format) for s in layers] == [
        (f"{tmp_path}/conf/base.yaml", "yaml"),
        ("/srv/prod.json", "json"),
        ("etcd://h:2379/app/c.toml", "toml"),
    ]
    # Resolved again (a framework's settings compared): the same text.
    assert Settings.resolve({}, source=settings.source).source == settings.source


def test_hotcfg_format_is_the_format_of_layers_without_a_suffix(tmp_path):
    settings = Settings.resolve(
        {"HOTCFG_SOURCE": "a.json | etcd://h/app/config", "HOTCFG_FORMAT": "toml"},
        base_dir=str(tmp_path),
    )
    assert [s.format for s in layer_settings(settings)] == ["json", "toml"]
    # One source: HOTCFG_FORMAT still overrides its suffix, as before.
    assert Settings.resolve({}, source="a.json", format="toml").format == "toml"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "a.yaml | b.conf",
            r"^HOTCFG_SOURCE: layer 2 of 2 \(b\.conf\): cannot tell the format",
        ),
        (
            "a.yaml | etcd://h",
            r"^HOTCFG_SOURCE: invalid value .*: layer 2 of 2 \(etcd://h\): expected",
        ),
        ("a.yaml | | b.yaml", r"layer 2 of 3 is empty"),
        # A path holding "|" cannot be named: it is two layers.
        ("/srv/a|b.yaml", r"layer 1 of 2 \(/srv/a\): cannot tell the format"),
    ],
)
def test_a_bad_layer_stops_startup_naming_it(source, message):
    with pytest.raises(ConfigError, match=message):
        Settings.resolve({"HOTCFG_SOURCE": source})


@pytest.mark.parametrize(
    "source",
    [
        "a.yaml | https://user:s3cret@h.example/x.yaml",
        "etcd://h:2379/k.yaml | https://user:s3cret@h.example/x.yaml",
        "a.yaml | etcd://user:s3cret@h:2379/k.yaml",
    ],
)
def test_a_layer_refused_for_its_credentials_never_shows_them(source):
    with pytest.raises(ConfigError) as refused:
        Settings.resolve({"HOTCFG_SOURCE": source})
    assert "s3cret" not in str(refused.value)
    assert "***@h" in str(refused.value)


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        # No suffix: the format cannot be told; the reason names the layer.
        ("a.yaml | https://h.example/config?sig=s3cret", "config?sig=***"),
        # Not a URL hotcfg can fetch: refused while parsing the setting.
        ("a.yaml | https://h.example/x.yaml?sig=s3cret#top", "x.yaml?sig=***"),
        ("a.yaml | etcd://h:2379/k.yaml?token=s3cret", "k.yaml?token=***"),
    ],
)
def test_a_layer_refused_for_anything_never_shows_its_query_values(source, shown):
    with pytest.raises(ConfigError) as refused:
        Settings.resolve({"HOTCFG_SOURCE": source})
    assert "s3cret" not in str(refused.value)
    assert shown in str(refused.value)


# -- environment overrides ----------------------------------------------------

ENV_KEY = st.from_regex(r"[a-z0-9]{1,4}(_[a-z0-9]{1,3}){0,2}", fullmatch=True)


@untimed
@given(st.lists(ENV_KEY, min_size=1, max_size=4).map(tuple))
def test_env_names_and_paths_round_trip(path):
    variable = variable_for(path)
    assert variable.startswith("HOTCFG_SET__")
    assert variable.upper() == variable
    assert path_for(variable) == path


def test_double_underscores_separate_levels_and_names_are_lowercased():
    assert path_for("HOTCFG_SET__DB__TIMEOUT") == ("db", "timeout")
    assert path_for("HOTCFG_SET__LOG_LEVEL") == ("log_level",)
    assert path_for("HOTCFG_SET__Feature__New_Checkout") == ("feature", "new_checkout")
    assert variable_for(("db", "timeout")) == "HOTCFG_SET__DB__TIMEOUT"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5),
        ("-1.5", -1.5),
        ("true", True),
        ("off", False),  # the same YAML as the files: 1.1 booleans
        ('"5"', "5"),
        ("'true'", "true"),
        ("debug", "debug"),
        ("", None),
        ("null", None),
        ("[a, 1]", ["a", 1]),
        ("- a\n- b\n", ["a", "b"]),
    ],
)
def test_override_values_are_yaml_scalars_or_lists(text, value):
    (override,) = overrides_from({"HOTCFG_SET__DB__X": text, "PATH": "/bin"})
    assert override.path == ("db", "x")
    assert override.value == value
    assert type(override.value) is type(value)


@pytest.mark.parametrize(
    ("environ", "error", "message"),
    [
        ({"HOTCFG_SET_DB": "1"}, ConfigError, r"^HOTCFG_SET_DB: an override is named"),
        (
            {"HOTCFG_SET__DB": "{timeout: 5}"},
            ValidationError,
            r"^HOTCFG_SET__DB: the value is a mapping; .*HOTCFG_SET__DB__<KEY>",
        ),
        (
            {"HOTCFG_SET__DB": "x", "HOTCFG_SET__DB__TIMEOUT": "5"},
            ConfigError,
            r"HOTCFG_SET__DB and HOTCFG_SET__DB__TIMEOUT both set db$",
        ),
        (
            {"HOTCFG_SET__db": "1", "HOTCFG_SET__DB": "2"},
            ConfigError,
            r"both set db$",
        ),
        ({"HOTCFG_SET__A____B": "1"}, ConfigError, r"^HOTCFG_SET__A____B: an empty"),
        ({"HOTCFG_SET__": "1"}, ConfigError, r"^HOTCFG_SET__: an empty"),
        ({"HOTCFG_SET__A": "[unclosed"}, ParseError, r"^HOTCFG_SET__A:\d+:\d+: inval"),
        ({"HOTCFG_SET__DAY": "2024-01-01"}, ValidationError, r"type date"),
        ({"HOTCFG_SET__A": "\udcff"}, ConfigError, r"not valid UTF-8"),
    ],
)
def test_a_bad_override_is_refused_naming_the_variable(environ, error, message):
    with pytest.raises(error, match=message):
        overrides_from(environ)


def test_overrides_are_one_document_merged_last():
    overrides = overrides_from(
        {
            "HOTCFG_SET__DB__TIMEOUT": "5",
            "HOTCFG_SET__DB__HOSTS": "[a, b]",
            "HOTCFG_SET__LOG_LEVEL": "debug",
        }
    )
    assert override_document(overrides) == {
        "db": {"timeout": 5, "hosts": ["a", "b"]},
        "log_level": "debug",
    }
    base = {"db": {"timeout": 2, "hosts": ["x"], "user": "u"}, "db2": 1}
    assert merge([base, override_document(overrides)]) == {
        "db": {"timeout": 5, "hosts": ["a", "b"], "user": "u"},
        "db2": 1,
        "log_level": "debug",
    }


# -- explain ------------------------------------------------------------------


def example_layers():
    return (
        Layer("/srv/app/conf/base.yaml", {"db": {"timeout": 2, "host": "a"}}),
        Layer("/srv/app/conf/production.yaml", {"db": {"host": "b"}}),
        Layer("etcd://127.0.0.1:2379/app/config.yaml", {"db": {"timeout": 3}}),
        environment_layer(overrides_from({"HOTCFG_SET__DB__TIMEOUT": "5"})),
    )


def test_explain_names_the_winning_layer_and_what_the_others_had():
    layers = example_layers()
    live = merge([layer.document for layer in layers])
    answer = explain(layers, ("db", "timeout"), live)
    assert answer["value"] == 5
    assert answer["from"] == ["environment HOTCFG_SET__DB__TIMEOUT"]
    assert render(answer) == [
        "db.timeout = 5",
        "  from   environment HOTCFG_SET__DB__TIMEOUT",
        "  under  etcd://127.0.0.1:2379/app/config.yaml = 3",
        "         /srv/app/conf/base.yaml = 2",
        "  unset  /srv/app/conf/production.yaml",
    ]


def test_explain_of_a_mapping_names_the_layers_merged_into_it():
    layers = example_layers()
    live = merge([layer.document for layer in layers])
    answer = explain(layers, ("db",), live)
    assert answer["mapping"]
    assert answer["keys"] == {
        "host": ["/srv/app/conf/production.yaml"],
        "timeout": ["environment HOTCFG_SET__DB__TIMEOUT"],
    }
    assert render(answer) == [
        "db = a mapping of 2 keys",
        "  from   environment HOTCFG_SET__DB__TIMEOUT",
        "         etcd://127.0.0.1:2379/app/config.yaml",
        "         /srv/app/conf/production.yaml",
        "         /srv/app/conf/base.yaml",
        "  keys   host     from /srv/app/conf/production.yaml",
        "         timeout  from environment HOTCFG_SET__DB__TIMEOUT",
    ]


def test_explain_of_a_missing_key_says_what_hid_it():
    layers = (
        Layer("base.yaml", {"db": {"timeout": 2}}),
        Layer("etcd://h/k", {"db": "sqlite"}),
    )
    live = merge([layer.document for layer in layers])
    answer = explain(layers, ("db", "timeout"), live)
    assert not answer["found"]
    answer["generation"] = 4
    assert render(answer) == [
        "no key 'db.timeout' in generation 4",
        "  under  base.yaml = 2",
        "  unset  etcd://h/k (db is not a mapping there)",
    ]


def test_explain_says_when_the_validators_changed_the_merged_value():
    layers = (Layer("a.yaml", {"n": 1}),)
    answer = explain(layers, ("n",), {"n": 2})
    assert answer["changed_by_validators"]
    assert render(answer)[-1].startswith("  note   the validators changed it")
    assert "changed_by_validators" not in explain(layers, ("n",), {"n": 1})


@untimed
@given(LAYERS, PATHS)
def test_explain_takes_any_layers_and_path(docs, path):
    layers = [Layer(f"layer{i}", doc) for i, doc in enumerate(docs)]
    merged = merge(docs)
    answer = explain(layers, path, merged)
    assert answer["found"] == (lookup(merged, path) is not MISSING)
    assert "changed_by_validators" not in answer
    if answer["found"] and not answer["mapping"]:
        last = max(i for i, doc in enumerate(docs) if lookup(doc, path) is not MISSING)
        assert answer["from"] == [f"layer{last}"]
    assert render(answer)


def test_layers_module_is_pure():
    loaded = loaded_after("import hotcfg._content.layers")
    assert sorted(loaded & set(IMPURE)) == []
    ours = {name for name in loaded if name.startswith("hotcfg.")}
    pure = {"_content.layers", "_content.loaders", "_content.validate"}
    pure |= {"_segment.layout", "_errors", "_content", "_segment"}  # packages too
    assert ours == {f"hotcfg.{name}" for name in pure}


def test_a_kept_document_gets_the_overrides_of_now_on_top():
    """A rollback's or the cache's document, under the master's overrides:
    the merge shares nothing with it, and --explain names both."""
    kept = {"db": {"timeout": 9, "host": "one"}}
    overrides = overrides_from({"HOTCFG_SET__DB__TIMEOUT": "2"})
    merged, layers = with_overrides("rollback to generation 1", kept, overrides)
    assert merged == {"db": {"timeout": 2, "host": "one"}}
    merged["db"]["host"] = "changed by a validator"
    assert kept == {"db": {"timeout": 9, "host": "one"}}
    assert explain(layers, ["db", "timeout"], merged)["from"] == [
        "environment HOTCFG_SET__DB__TIMEOUT"
    ]
    alone, only = with_overrides("the cache", kept, ())
    assert alone == kept
    assert alone is not kept
    assert [layer.name for layer in only] == ["the cache"]
