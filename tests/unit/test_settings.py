"""One settings path: the environment, ``configure()`` and framework
mappings go through the same parsing, and a bad value stops startup naming
its variable."""

import signal
import socket

import pytest

import hotcfg
from hotcfg import _runtime
from hotcfg._errors import ConfigError
from hotcfg._master import fleet
from hotcfg._settings import Settings
from hotcfg._sources.locations import redact_url


def test_explicit_values_are_parsed_like_the_environment():
    from_env = Settings.resolve(
        {
            "HOTCFG_DEBOUNCE_MS": "50",
            "HOTCFG_SIGNAL": "usr1",
            "HOTCFG_START_EMPTY": "yes",
            "HOTCFG_MAX_BYTES": "1024",
        }
    )
    explicit = Settings.resolve(
        {}, debounce_ms=50, hint_signal="SIGUSR1", start_empty=True, max_bytes="1024"
    )
    assert from_env == explicit
    assert explicit.hint_signal == signal.SIGUSR1
    assert explicit.debounce_ms == 50.0


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("format", "yamll", "HOTCFG_FORMAT"),
        ("debounce_ms", -1, "HOTCFG_DEBOUNCE_MS"),
        ("debounce_ms", "nan", "HOTCFG_DEBOUNCE_MS"),
        ("hint_signal", "SIGNOPE", "HOTCFG_SIGNAL"),
        ("hint_signal", 999, "HOTCFG_SIGNAL"),
        ("validator", "no_colon", "HOTCFG_VALIDATOR"),
        ("model", "pkg.mod:", "HOTCFG_MODEL"),
        ("max_bytes", 0, "HOTCFG_MAX_BYTES"),
        ("name", "../x", "HOTCFG_NAME"),
        ("start_empty", "maybe", "HOTCFG_START_EMPTY"),
        ("validator_warn_ms", 0, "HOTCFG_VALIDATOR_WARN_MS"),
    ],
)
def test_a_bad_value_is_refused_at_once_naming_the_variable(field, value, variable):
    with pytest.raises(ConfigError, match=f"^{variable}: invalid value"):
        Settings.resolve({}, **{field: value})
    with pytest.raises(ConfigError, match=f"^{variable}: invalid value"):
        Settings.resolve({variable: str(value)})


def test_configure_refuses_a_bad_format_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="HOTCFG_FORMAT"):
        hotcfg.configure(tmp_path / "c.yaml", format="yamll")


def test_an_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="unknown hotcfg setting"):
        Settings.resolve({}, debounce=5)


def test_the_format_comes_from_the_suffix_at_resolve_time(tmp_path):
    assert Settings.resolve({}, source=tmp_path / "c.yml").format == "yaml"
    assert Settings.resolve({}, source="c.conf", format="toml").format == "toml"
    with pytest.raises(ConfigError, match=r"^HOTCFG_SOURCE: cannot tell the format"):
        Settings.resolve({"HOTCFG_SOURCE": str(tmp_path / "c.conf")})


def test_a_relative_source_is_made_absolute_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.resolve({"HOTCFG_SOURCE": "conf/c.yaml"})
    monkeypatch.chdir("/")
    assert settings.source == str(tmp_path / "conf" / "c.yaml")
    based = Settings.resolve({"HOTCFG_SOURCE": "c.yaml"}, base_dir="/srv/app")
    assert based.source == "/srv/app/c.yaml"


def test_resolve_settings_keeps_what_configure_set(tmp_path, monkeypatch):
    monkeypatch.setattr(_runtime, "_settings", None)
    monkeypatch.setenv("HOTCFG_SOURCE", "c.yaml")
    assert _runtime.resolve_settings(base_dir=str(tmp_path)).source == str(
        tmp_path / "c.yaml"
    )
    assert _runtime.resolve_settings(base_dir="/elsewhere").source == str(
        tmp_path / "c.yaml"
    )


def test_updated_reparses_and_refinds_the_format(tmp_path):
    settings = Settings.resolve({}, source=tmp_path / "a.yaml", debounce_ms=5)
    moved = settings.updated(source=tmp_path / "b.json")
    assert (moved.format, moved.debounce_ms) == ("json", 5.0)
    with pytest.raises(ConfigError, match="HOTCFG_WATCH"):
        settings.updated(watch="inotify")


def test_a_token_with_layers_on_several_http_origins_is_refused(tmp_path):
    token = str(tmp_path / "token")
    two = "https://config.internal/base.yaml | https://other.example/team.yaml"
    message = (
        r"^HOTCFG_HTTP_TOKEN_FILE: the layers name 2 HTTP origins "
        r"\(https://config\.internal, https://other\.example\); "
        r"a token is sent to one origin only$"
    )
    with pytest.raises(ConfigError, match=message):
        Settings.resolve({"HOTCFG_SOURCE": two, "HOTCFG_HTTP_TOKEN_FILE": token})
    # Whichever is set last: the token on the layers, or the layers on it.
    with pytest.raises(ConfigError, match=message):
        Settings.resolve({}, source=two).updated(http_token_file=token)
    with pytest.raises(ConfigError, match=message):
        Settings.resolve({}, http_token_file=token).updated(source=two)
    # Another port, or another scheme, is another origin; the scheme's own
    # port written out is not.
    for other in (
        "https://config.internal:8443/b.yaml",
        "http://config.internal/b.yaml",
    ):
        with pytest.raises(
            ConfigError, match=r"^HOTCFG_HTTP_TOKEN_FILE: .* 2 HTTP origins"
        ):
            Settings.resolve(
                {},
                source=f"https://config.internal/a.yaml | {other}",
                http_token_file=token,
            )

    # One origin (host names are case-insensitive), with files and etcd: fine.
    fine = (
        f"{tmp_path / 'base.yaml'} | https://Config.Internal/a.yaml"
        " | etcd://127.0.0.1:2379/app/c.yaml | HTTPS://config.internal:443/b.json"
    )
    settings = Settings.resolve({}, source=fine, http_token_file=token)
    assert settings.http_token_file == token
    # Several origins without a token: fine too.
    assert Settings.resolve({}, source=two).http_token_file is None


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/etc/app.yaml", "/etc/app.yaml"),
        ("https://h/app.yaml", "https://h/app.yaml"),
        (
            "https://b.s3.example/app.yaml?X-Amz-Credential=AKIA1&X-Amz-Signature=ab12",
            "https://b.s3.example/app.yaml?X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        ("https://h/a.json?sig=x&empty=&flag", "https://h/a.json?sig=***&empty=&***"),
        ("https://h/a.json?opaque-token", "https://h/a.json?***"),
        ("https://u:p@h/a.yaml?t=1", "https://***@h/a.yaml?t=***"),
        ("https://u:p?w@h/a.yaml", "https://***@h/a.yaml"),  # "?" in a password
        ("http://u:p@ss@proxy:3128", "http://***@proxy:3128"),  # "@" in one
        ("http://u:p@s?s#@proxy:3128/", "http://***@proxy:3128/"),
        ("HTTPS_PROXY=http://u:a@b@p:1 etc.", "HTTPS_PROXY=http://***@p:1 etc."),
        ("https://h/a.yaml?t=1#frag", "https://h/a.yaml?t=***"),
        (
            "a.yaml | https://h/b.yaml?token=1 | etcd://e:2379/k.yaml",
            "a.yaml | https://h/b.yaml?token=*** | etcd://e:2379/k.yaml",
        ),
        ("cache:https://h/a.yaml?sig=1", "cache:https://h/a.yaml?sig=***"),
    ],
)
def test_redact_url_hides_credentials_and_every_query_value(text, shown):
    assert redact_url(text) == shown


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("h1", "h1"),
        ("  web-3.eu  ", "web-3.eu"),
        ("rack-2:b", "rack-2:b"),
        ("é" * 253, "é" * 253),
    ],
)
def test_a_host_label_is_kept_stripped(raw, label):
    assert Settings.resolve({"HOTCFG_HOST": raw}).host == label
    assert Settings.resolve({}, host=raw).host == label


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "not an empty one"),
        ("   ", "not an empty one"),
        ("a/b", "no '/'"),
        ("/", "no '/'"),
        ("h\x001", "only printable"),
        ("h\t1", "only printable"),
        ("web\n2", "only printable"),
        ("h" * 254, "at most 253 characters"),
        ("rack 2", "no blank"),
    ],
)
def test_a_bad_host_label_is_refused_naming_hotcfg_host(raw, why):
    with pytest.raises(ConfigError, match=f"^HOTCFG_HOST: invalid value .*{why}"):
        Settings.resolve({"HOTCFG_HOST": raw})


def test_without_a_host_label_the_fleet_record_names_the_host_name():
    assert Settings().host is None
    assert fleet.host_label(Settings()) == socket.gethostname()
    assert fleet.host_label(Settings.resolve({"HOTCFG_HOST": "h2"})) == "h2"
