"""Every hotcfg setting, resolved once: explicit argument > ``HOTCFG_*`` > default.

The one place that knows a setting's default and how its text is parsed.
Explicit arguments (``hotcfg.configure(debounce_ms=50)``, Flask's
``app.config``, Django's ``settings.HOTCFG``) go through the same parsing as
the environment, so ``50``, ``"50"`` and ``50.0`` mean the same and a bad
value is refused at startup, naming the variable, instead of failing later
at every publish. Everything else receives a :class:`Settings`.

The settings table is the :class:`Settings` class: each field's
``metadata`` holds its description and its default as shown, and the
documentation's settings reference is generated from it at build time
(``tools/settings_table.py``, through ``docs/hooks.py``).

A relative ``HOTCFG_SOURCE`` is made absolute when the settings are
resolved, against the directory given (Gunicorn's ``--chdir``) or the
current one: an application that changes directory later must not move the
watched file. An ``etcd://`` source is kept as written (endpoints checked);
its format comes from ``HOTCFG_FORMAT`` or the key's suffix, and is YAML
for a prefix (a key ending in ``/`` has no suffix; YAML reads ``5`` as a
number). An
``http://`` or ``https://`` URL is kept as written too (scheme, host and
port checked; credentials in it refused); its format comes from
``HOTCFG_FORMAT`` or the suffix of its path.

Layers (``HOTCFG_SOURCE='base.yaml | etcd://h:2379/app/c.yaml'``, see
``_content.layers``): each part is checked and normalised as a single source is,
and each layer's format is its own suffix's; ``HOTCFG_FORMAT`` is then the
format of the layers whose name has no known suffix (one variable cannot
name several formats, and it must not make a ``.json`` layer read as TOML).
A token file (``HOTCFG_HTTP_TOKEN_FILE``) is refused with layers on more
than one HTTP origin (scheme, host and port): every HTTP layer would send
it, and a token is for one origin.
``HOTCFG_SET__*`` overrides are not settings: the source reads them
(``_sources.select.source_for``).

The grammar of source strings (etcd targets, URLs, layers, redaction) is
``_sources.locations``'; this module applies it, and makes a file's path
absolute. Imports nothing of hotcfg but ``_errors``, the pure ``_content``
modules and ``_sources.locations``: never ``_master``, ``_worker`` or a
source.
"""

from __future__ import annotations

import math
import os
import signal
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ._content.layers import join_sources, layer_name, split_sources
from ._content.loaders import FORMATS
from ._errors import ConfigError
from ._segment.where import default_segment_dir
from ._sources.locations import (
    ETCD_SCHEME,
    check_sources,
    format_name,
    format_of,
    http_origin,
    is_http,
    layer_format,
    parse_address,
    redact_url,
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
WATCH_MODES = ("auto", "events", "poll")
PEERS_MODES = ("auto", "off", "read")
ETCD_ORDERS = ("random", "listed")


def parse_signal(value: str) -> int | None:
    """``"SIGURG"``, ``"URG"`` or ``"23"`` -> the number; ``"none"`` -> None.

    Raises:
        ValueError: not a signal this system knows.
    """
    text = value.strip().upper()
    if text in {"NONE", "OFF", "0", ""}:
        return None
    if text.isdigit():
        number = int(text)
        if number not in {int(s) for s in signal.valid_signals()}:
            raise ValueError(f"no signal number {number} on this system")
        return number
    name = text if text.startswith("SIG") else f"SIG{text}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {value!r}") from None


def _setting(
    default: Any,
    doc: str,
    *,
    shown: str | None = None,
    forms: tuple[tuple[str, str, str], ...] = (),
) -> Any:
    """A :class:`Settings` field that documents itself in its ``metadata``:
    ``doc``, and ``shown`` and ``forms`` when given (see :class:`Settings`)."""
    metadata: dict[str, Any] = {"doc": doc}
    if shown is not None:
        metadata["shown"] = shown
    if forms:
        metadata["forms"] = forms
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved settings of one process. Build with :meth:`resolve`.

    Each field's ``metadata`` documents it once: ``doc`` (what the setting
    does, Markdown), and where the default alone would not say it, ``shown``
    (the default as the docs show it); ``forms`` lists the other ways a
    setting is written (rows of example, meaning and default). The
    documentation's settings reference is generated from them at build
    time (``tools/settings_table.py``), so it cannot drift from this class.
    """

    source: str | None = _setting(
        None,
        "config file path (`.yaml`, `.yml`, `.json`, `.toml`)",
        shown="required",
        forms=(
            (
                "HOTCFG_SOURCE=etcd://host:2379[,host2:2379,...]/app/config.yaml",
                "one etcd v3 key holding the document (format from `HOTCFG_FORMAT` "
                "or the key's suffix); the master reads it, watches it from the next "
                "revision and publishes each change. Started while etcd is "
                "unreachable, the master serves its cache of the last good config "
                "([cold start](../guide/sources.md#etcd)). Each master keeps a "
                "record in etcd for `hotcfg status --fleet`; auth and TLS: "
                "[etcd](../guide/sources.md#etcd)",
                "",
            ),
            (
                "HOTCFG_SOURCE=etcd://host:2379[,...]/app/config/",
                "every key under a prefix (the source ends in `/`) as one mapping: "
                "`/app/config/db/timeout` is `db.timeout`; each value is one "
                "document, YAML unless `HOTCFG_FORMAT` says otherwise (see "
                "[etcd](../guide/sources.md#etcd))",
                "",
            ),
            (
                "HOTCFG_SOURCE=https://config.example/app.yaml",
                "a document at an `http://` or `https://` URL (format from "
                "`HOTCFG_FORMAT` or the path's suffix), polled with "
                "`ETag`/`Last-Modified`; see [HTTP source]"
                "(../guide/sources.md#http-source)",
                "",
            ),
            (
                "HOTCFG_SOURCE='conf/base.yaml | conf/production.yaml | "
                "etcd://10.0.0.1:2379/app/config.yaml'",
                "several sources, merged in order (see [layers]"
                "(../guide/sources.md#layered-sources-and-overrides))",
                "",
            ),
            # Not a setting: the source reads these (_sources.source_for).
            (
                "HOTCFG_SET__DB__TIMEOUT=5",
                "sets `db.timeout` on top of every layer (see [overrides]"
                "(../guide/sources.md#layered-sources-and-overrides)); read "
                "once when the master starts",
                "none",
            ),
        ),
    )
    format: str | None = _setting(
        None,
        "`yaml`, `json` or `toml`, overriding the suffix (with several layers: the "
        "format of those whose name has no known suffix)",
        shown="from suffix",
    )
    debounce_ms: float = _setting(100.0, "quiet time after file events before reading")
    hint_signal: int | None = _setting(
        int(signal.SIGURG), "hint signal (`SIGURG`, ...) or `none`", shown="`SIGURG`"
    )
    validator: str | None = _setting(
        None, "`module:function` taking the mapping, returning it or raising"
    )
    schema: str | None = _setting(
        None, "JSON Schema file (needs `pip install 'hotcfg[schema]'`)"
    )
    model: str | None = _setting(
        None,
        "`module:Class`, a dataclass or pydantic model the whole config must fit "
        "(see [typed configs](../guide/typed.md))",
    )
    validator_warn_ms: float = _setting(
        5000.0,
        "a validator running longer than this is logged (again each time as long "
        "passes) and shown in `hotcfg status`",
    )
    apply_warn_ms: float = _setting(
        10000.0,
        "the master logs a WARNING naming a worker that has not applied a publish "
        "this long",
    )
    max_bytes: int = _setting(
        8 * 1024 * 1024, "largest config file accepted", shown="`8388608` (8 MiB)"
    )
    segment_dir: str | None = _setting(
        None,
        "private (0700) directory of the segment",
        shown=(
            "`/dev/shm/hotcfg-<uid>` (without `/dev/shm`: the same in the "
            "temporary directory)"
        ),
    )
    name: str = _setting(
        "hotcfg",
        "the service's name: segment, history and cache file name prefix (see "
        "[the command line](../operations/cli.md))",
    )
    start_empty: bool = _setting(
        False,
        "start with `{}` when the source is bad at startup instead of refusing to "
        "start",
    )
    watch: str = _setting(
        "auto",
        "`auto` (change events, polling if inotify limits are reached), `events`, or "
        "`poll` (for file systems without change events: NFS, some FUSE and "
        "container mounts)",
    )
    poll_interval_ms: float = _setting(
        1000.0,
        "how often the file is `stat`ed in every mode (the only check in `poll` "
        "mode, a safety net for lost events otherwise) and the watcher's health "
        "checked; how often an HTTP source is fetched",
    )
    worker_nice: int | None = _setting(
        None,
        "nice value (-20 to 19) each Gunicorn worker sets for itself at fork (see "
        "[busy hosts](../operations/busy-hosts.md))",
        shown="unchanged",
    )
    metrics: str | None = _setting(
        None,
        "`host:port` of the master's Prometheus endpoint (see "
        "[metrics](../operations/metrics.md))",
        shown="off",
    )
    applier: bool = _setting(
        True,
        "Gunicorn workers switch when hinted, in an applier thread (`off`: at their "
        "next request only)",
        shown="`on`",
    )
    peers: str = _setting(
        "auto",
        "processes that spawn without a publishing parent (`uvicorn --workers`, "
        "Hypercorn, a `multiprocessing` pool) elect one publisher per service and "
        "host and share its segment, and another takes over when it dies (`off`: "
        "each process publishes for itself alone; see [frameworks]"
        "(../guide/frameworks.md#uvicorn-hypercorn-and-multiprocessing); `read`: "
        "never publish, only read what a `hotcfg agent` with the same settings "
        "publishes, waiting up to 30 s for it at the first read, see "
        "[agent](../operations/agent.md))",
    )
    history: int = _setting(
        10,
        "good generations the master keeps for `hotcfg history`, `diff` and "
        "`rollback`, across restarts (`0`: none, no file)",
    )
    etcd_timeout_ms: float = _setting(
        5000.0,
        "etcd: connecting, and each request but the watch stream, as a whole (the "
        "probe of a silent watch's member: at most 2 s)",
    )
    etcd_progress_ms: float = _setting(
        600000.0,
        "etcd: the cluster's progress-notification interval "
        "(`--experimental-watch-progress-notify-interval`); a watch silent 1.5 times "
        "this long (plus the timeout) is reconnected",
        shown="`600000` (etcd's)",
    )
    etcd_order: str = _setting(
        "random",
        "etcd: where each process starts in the endpoint list: `random` (a "
        "rotation chosen once per process, so a fleet spreads over the members) "
        "or `listed` (always the first written, e.g. the local member)",
    )
    etcd_user: str | None = _setting(
        None, "etcd: user to authenticate as (needs `HOTCFG_ETCD_PASSWORD_FILE`)"
    )
    etcd_password_file: str | None = _setting(
        None,
        "etcd: file holding that user's password, never the password itself "
        "(trailing newline stripped; read again at each authentication, so rotating "
        "it needs no restart)",
    )
    etcd_ca_file: str | None = _setting(
        None,
        "etcd: CA bundle (PEM) the members' certificates are checked against; "
        "setting it (or a client certificate) means TLS to every endpoint",
        shown="none: plain HTTP",
    )
    etcd_cert_file: str | None = _setting(
        None,
        "etcd: client certificate (PEM), for members started with `--client-cert-auth`",
    )
    etcd_key_file: str | None = _setting(
        None, "etcd: its private key (PEM, unencrypted)"
    )
    fleet: bool = _setting(
        True,
        "etcd: the publishing process (the Gunicorn master, Celery's parent, the "
        "process peers elect) keeps a record of itself and its workers under "
        "`/hotcfg/fleet/` for `hotcfg status --fleet`",
    )
    fleet_ttl_ms: float = _setting(
        10000.0,
        "etcd: that record's lease; a master that dies disappears this long after "
        "(one that stops, at once); at least `2000`",
    )
    host: str | None = _setting(
        None,
        "etcd: the host label of this publishing process's fleet record (its key "
        "`/hotcfg/fleet/<key>/<host>:<pid>` and its `host`, the `HOST` of `hotcfg "
        "status --fleet`), so several masters on one machine, or in containers "
        "sharing a host name, stand for several hosts; a staged rollout's "
        "`--canary` selects masters by it too: printable, no `/`, at most "
        "253 characters",
        shown="the host name",
    )
    http_timeout_ms: float = _setting(
        5000.0,
        "HTTP source: each fetch's total deadline (connecting, TLS, redirects, "
        "headers and body)",
    )
    http_token_file: str | None = _setting(
        None,
        "HTTP source: a file holding a bearer token, read at each fetch, sent only "
        "to the URL's own origin (with layers: refused at startup when the HTTP "
        "layers are on more than one origin); never logged",
    )
    http_ca_file: str | None = _setting(
        None, "HTTP source: CA bundle (PEM) for `https`", shown="the system's"
    )

    @classmethod
    def resolve(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        base_dir: str | None = None,
        **explicit: Any,
    ) -> Settings:
        """Explicit keyword arguments win over ``HOTCFG_*`` variables.

        Args:
            environ: the variables (default ``os.environ``).
            base_dir: what a relative source is relative to (default: the
                current directory, now).
            **explicit: field values, as text or as their type; ``None``
                leaves a field to the environment.

        Raises:
            ConfigError: a value cannot be understood, naming its variable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            f.name: env[variable(f.name)]
            for f in fields(cls)
            if variable(f.name) in env
        }
        values.update((k, v) for k, v in explicit.items() if v is not None)
        return cls().updated(base_dir=base_dir, **values)

    def updated(self, *, base_dir: str | None = None, **changes: Any) -> Settings:
        """These settings with ``changes`` (field names, values as text or as
        their type; ``None`` changes nothing), parsed as :meth:`resolve` does.
        A new source without a new format gets the format of its suffix;
        with several layers, each gets its own (:func:`layer_settings`).

        Raises:
            ConfigError: a value cannot be understood, naming its variable;
                a token file with layers on several HTTP origins.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError("unknown hotcfg setting", source=", ".join(unknown))
        values = {
            name: _convert(name, _as_text(value))
            for name, value in changes.items()
            if value is not None
        }
        source = values.get("source")
        if source is not None and len(split_sources(source)) > 1:
            values["source"] = _normalise_layers(source, values.get("format"), base_dir)
            values["format"] = values.get("format")  # of layers without a suffix
        elif source is not None:
            values["source"], name = normalise_source(source, base_dir=base_dir)
            if values.get("format") is None:
                try:
                    values["format"] = format_of(values["source"], name)
                except ConfigError as exc:
                    raise ConfigError(exc.reason, source="HOTCFG_SOURCE") from None
        settings = replace(self, **values)
        _check_token_origins(settings)
        return settings

    @classmethod
    def from_mapping(
        cls,
        values: Mapping[str, Any],
        environ: Mapping[str, str] | None = None,
        *,
        base_dir: str | None = None,
    ) -> Settings:
        """Settings from a framework's own configuration (Flask's ``app.config``,
        Django's ``settings.HOTCFG``), keys named like the ``HOTCFG_*`` variables.

        The values go through the same parsing as the variables, and win
        over the environment: the application's configuration is the more
        deliberate choice. ``None`` leaves a setting to the environment.

        Raises:
            ConfigError: an unknown key, or a value that cannot be understood.
        """
        by_variable = {variable(f.name): f.name for f in fields(cls)}
        explicit: dict[str, Any] = {}
        for key, value in values.items():
            if key not in by_variable:
                raise ConfigError("unknown hotcfg setting", source=key)
            explicit[by_variable[key]] = value
        return cls.resolve(environ, base_dir=base_dir, **explicit)

    def differences(self, other: Settings, variables: Iterable[str]) -> list[str]:
        """Which of ``variables`` (``HOTCFG_*`` names) differ between two settings."""
        by_variable = {variable(f.name): f.name for f in fields(self)}
        return [
            var
            for var in variables
            if getattr(self, by_variable[var]) != getattr(other, by_variable[var])
        ]

    def shown(self, name: str) -> str:
        """The value of ``name`` (a ``HOTCFG_*`` variable) as messages show
        it: quoted, or ``unset``, with a URL's secrets redacted
        (``locations.redact_url``): messages end up in logs."""
        by_variable = {variable(f.name): f.name for f in fields(self)}
        value = getattr(self, by_variable[name])
        return "unset" if value is None else repr(redact_url(_as_text(value)))

    @property
    def resolved_segment_dir(self) -> str:
        return self.segment_dir or default_segment_dir()


def host_label(settings: Settings) -> str:
    """The host this process stands for: ``HOTCFG_HOST``, or the machine's
    host name. Its fleet record is named by it, and a canary's selector
    picks masters by it (``_sources.etcd.rollout``); both sides ask here,
    so they never disagree."""
    return settings.host or socket.gethostname()


def normalise_source(source: str, *, base_dir: str | None) -> tuple[str, str]:
    """One source as it is kept, and the name its format is guessed from.

    A file is made absolute against ``base_dir`` (default: the current
    directory, now); an ``etcd://`` source is kept as written and named by
    its key; an ``http(s)://`` URL is kept as written and named by its path.
    """
    if source.startswith(ETCD_SCHEME) or is_http(source):
        return source, format_name(source)
    path = os.path.abspath(os.path.join(base_dir or os.getcwd(), source))
    return path, path


def _check_token_origins(settings: Settings) -> None:
    """Refuse a bearer token with layers on several HTTP origins: the one
    token file would be sent to each of them, and a token belongs to one.

    Raises:
        ConfigError: naming ``HOTCFG_HTTP_TOKEN_FILE``.
    """
    if not settings.http_token_file or not settings.source:
        return
    origins = dict.fromkeys(
        http_origin(part) for part in split_sources(settings.source) if is_http(part)
    )
    if len(origins) > 1:
        raise ConfigError(
            f"the layers name {len(origins)} HTTP origins ({', '.join(origins)}); "
            "a token is sent to one origin only",
            source="HOTCFG_HTTP_TOKEN_FILE",
        )


def _normalise_layers(source: str, fmt: str | None, base_dir: str | None) -> str:
    """Several sources, each normalised as one is, and each with a format.

    Raises:
        ConfigError: a layer's format cannot be told, naming the layer.
    """
    parts = split_sources(source)
    kept = []
    for number, part in enumerate(parts, 1):
        path, name = normalise_source(part, base_dir=base_dir)
        try:
            layer_format(path, name, fmt)
        except ConfigError as exc:
            where = layer_name(number, len(parts), redact_url(part))
            raise ConfigError(
                f"{where}: {exc.reason}", source="HOTCFG_SOURCE"
            ) from None
        kept.append(path)
    return join_sources(kept)


def layer_settings(settings: Settings) -> list[Settings]:
    """The settings of each layer of ``settings.source`` (resolved), each
    with its one source and its format; ``[settings]`` for one source."""
    parts = split_sources(settings.source) if settings.source else []
    if len(parts) < 2:
        return [settings]
    return [
        replace(
            settings,
            source=part,
            format=layer_format(
                *normalise_source(part, base_dir=None), settings.format
            ),
        )
        for part in parts
    ]


def variable(name: str) -> str:
    """The ``HOTCFG_*`` variable of a :class:`Settings` field."""
    return "HOTCFG_SIGNAL" if name == "hint_signal" else f"HOTCFG_{name.upper()}"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    return str(value)


def _milliseconds(*, positive: bool) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            kind = "positive" if positive else "non-negative"
            raise ValueError(f"expected a {kind} number of milliseconds")
        return value

    return parse


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _format(raw: str) -> str:
    value = raw.strip().lower()
    return _choice(FORMATS)("yaml" if value == "yml" else value)


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered not in _TRUE | _FALSE:
        raise ValueError("expected true or false")
    return lowered in _TRUE


def _byte_count(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive number of bytes")
    return value


def _nice(raw: str) -> int | None:
    if not raw.strip():
        return None
    nice = int(raw)
    if not -20 <= nice <= 19:
        raise ValueError("a nice value is between -20 and 19")
    return nice


def _history_length(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 1000:
        raise ValueError("expected a number of generations from 0 to 1000")
    return value


def _import_spec(raw: str) -> str | None:
    spec = raw.strip()
    if not spec:
        return None
    module, sep, attr = spec.partition(":")
    if not (module and sep and attr):
        raise ValueError(f"{spec!r} must look like 'package.module:name'")
    return spec


def _address(raw: str) -> str:
    parse_address(raw)
    return raw.strip()


def _text(raw: str) -> str | None:
    return raw or None


def _source_layers(raw: str) -> str | None:
    """``a | b | c``: each layer checked as one source is
    (``locations.check_sources``)."""
    check_sources(raw)
    return raw or None


def _fleet_ttl(raw: str) -> float:
    value = _milliseconds(positive=True)(raw)
    if value < 2000:
        raise ValueError("etcd leases last at least 2000 ms")
    return value


#: The longest host label, a DNS name's longest.
HOST_MAX_CHARS = 253


def _host(raw: str) -> str:
    """A host label (``HOTCFG_HOST``): it names a master in the fleet
    record's key and in ``hotcfg status --fleet``'s table, so it is one
    printable path segment, and one column of the table (no blank)."""
    label = raw.strip()
    if not label:
        raise ValueError("expected a host label, not an empty one")
    if "/" in label:
        raise ValueError("a host label has no '/'")
    if not label.isprintable():
        raise ValueError("a host label has only printable characters")
    if any(c.isspace() for c in label):
        raise ValueError("a host label has no blank (it is one column of a table)")
    if len(label) > HOST_MAX_CHARS:
        raise ValueError(f"a host label has at most {HOST_MAX_CHARS} characters")
    return label


def _name(raw: str) -> str:
    name = raw.strip()
    if not name or "/" in name or name.startswith("."):
        raise ValueError("expected a file name prefix without '/'")
    return name


_PARSERS: dict[str, Callable[[str], Any]] = {
    "source": _source_layers,
    "format": lambda raw: _format(raw) if raw.strip() else None,
    "debounce_ms": _milliseconds(positive=False),
    "hint_signal": parse_signal,
    "validator": _import_spec,
    "schema": _text,
    "model": _import_spec,
    "validator_warn_ms": _milliseconds(positive=True),
    "apply_warn_ms": _milliseconds(positive=True),
    "max_bytes": _byte_count,
    "segment_dir": _text,
    "name": _name,
    "start_empty": _boolean,
    "watch": _choice(WATCH_MODES),
    "poll_interval_ms": _milliseconds(positive=True),
    "worker_nice": _nice,
    "metrics": lambda raw: _address(raw) if raw.strip() else None,
    "applier": _boolean,
    "peers": _choice(PEERS_MODES),
    "history": _history_length,
    "etcd_timeout_ms": _milliseconds(positive=True),
    "etcd_progress_ms": _milliseconds(positive=True),
    "etcd_order": _choice(ETCD_ORDERS),
    "etcd_user": lambda raw: raw.strip() or None,
    "etcd_password_file": _text,
    "etcd_ca_file": _text,
    "etcd_cert_file": _text,
    "etcd_key_file": _text,
    "fleet": _boolean,
    "fleet_ttl_ms": _fleet_ttl,
    "host": _host,
    "http_timeout_ms": _milliseconds(positive=True),
    "http_token_file": _text,
    "http_ca_file": _text,
}


def _convert(name: str, raw: str) -> Any:
    try:
        return _PARSERS[name](raw)
    except ValueError as exc:
        shown = redact_url(raw) if name == "source" else raw
        raise ConfigError(
            f"invalid value {shown!r}: {exc}", source=variable(name)
        ) from exc
