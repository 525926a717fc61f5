"""Every hotcfg setting, resolved once: explicit argument > ``HOTCFG_*`` > default.

The one place that knows a setting's default and how its text is parsed.
Explicit arguments (``hotcfg.configure(debounce_ms=50)``, Flask's
``app.config``, Django's ``settings.HOTCFG``) go through the same parsing as
the environment, so ``50``, ``"50"`` and ``50.0`` mean the same and a bad
value is refused at startup, naming the variable, instead of failing later
at every publish. Everything else receives a :class:`Settings`.

=========================  ==============================  ===================
environment variable       meaning                         default
=========================  ==============================  ===================
HOTCFG_SOURCE              path of the config file,        (required)
                           ``etcd://host:port[,...]/key``
                           (or ``/prefix/``: every key
                           under it, as one mapping), or
                           an ``http(s)://`` URL;
                           several, merged in order, with
                           `` | `` between them
HOTCFG_FORMAT              yaml, json or toml              from the suffix
                           (layers: of those without one)
HOTCFG_DEBOUNCE_MS         quiet time after file events    100
HOTCFG_SIGNAL              hint signal name, or ``none``   SIGURG
HOTCFG_VALIDATOR           ``module:function`` validator   none
HOTCFG_SCHEMA              path of a JSON Schema file      none
HOTCFG_MODEL               ``module:Class`` to fit         none
HOTCFG_VALIDATOR_WARN_MS   log (and show in ``status``) a  5000
                           validator running this long
HOTCFG_APPLY_WARN_MS       log a worker that has not       10000
                           applied a publish this long
HOTCFG_MAX_BYTES           largest config file accepted    8388608 (8 MiB)
HOTCFG_SEGMENT_DIR         where the shared segment lives  /dev/shm/hotcfg-<uid>
HOTCFG_NAME                segment name prefix             hotcfg
HOTCFG_START_EMPTY         start with {} if the source is  false
                           bad at startup (else refuse)
HOTCFG_WATCH               auto, events or poll            auto
HOTCFG_POLL_INTERVAL_MS    how often the file is stat'ed   1000
                           and the watcher checked, or
                           the URL fetched (ms)
HOTCFG_METRICS             host:port of the master's       off
                           Prometheus endpoint
HOTCFG_WORKER_NICE         nice value Gunicorn workers     unchanged
                           set for themselves (-20..19)
HOTCFG_APPLIER             Gunicorn workers switch when    true
                           hinted (false: at their next
                           request only)
HOTCFG_HISTORY             good generations the master     10
                           keeps for ``hotcfg history`` and
                           ``rollback`` (0: none, no file)
HOTCFG_ETCD_TIMEOUT_MS     etcd: connecting, and each      5000
                           request but the watch stream
HOTCFG_ETCD_PROGRESS_MS    etcd: the cluster's progress    600000 (etcd's)
                           notification interval; a watch
                           silent longer is reconnected
HOTCFG_ETCD_USER           etcd: user name (etcd auth)     none
HOTCFG_ETCD_PASSWORD_FILE  etcd: file holding the user's   none
                           password (never the password)
HOTCFG_ETCD_CA_FILE        etcd: CA bundle; setting it or  none (plain HTTP)
                           a client certificate means TLS
HOTCFG_ETCD_CERT_FILE      etcd: client certificate (PEM)  none
HOTCFG_ETCD_KEY_FILE       etcd: its private key (PEM)     none
HOTCFG_FLEET               etcd: the master keeps a record true
                           under a lease for
                           ``hotcfg status --fleet``
HOTCFG_FLEET_TTL_MS        etcd: that lease's time to      10000
                           live (a dead host's record
                           goes this long after)
HOTCFG_HTTP_TIMEOUT_MS     HTTP source: each fetch's total 5000
                           deadline
HOTCFG_HTTP_TOKEN_FILE     HTTP source: file holding a     none
                           bearer token
HOTCFG_HTTP_CA_FILE        HTTP source: CA bundle for      the system's
                           https
=========================  ==============================  ===================

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
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ._content.layers import join_sources, layer_name, split_sources
from ._content.loaders import FORMATS
from ._errors import ConfigError
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


def default_segment_dir() -> str:
    """``/dev/shm/hotcfg-<uid>`` (RAM-backed), else the temp dir's equivalent."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(base, f"hotcfg-{os.geteuid()}")


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


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved settings of one process. Build with :meth:`resolve`."""

    source: str | None = None
    format: str | None = None
    debounce_ms: float = 100.0
    hint_signal: int | None = int(signal.SIGURG)
    validator: str | None = None
    schema: str | None = None
    model: str | None = None
    validator_warn_ms: float = 5000.0
    apply_warn_ms: float = 10000.0
    max_bytes: int = 8 * 1024 * 1024
    segment_dir: str | None = None
    name: str = "hotcfg"
    start_empty: bool = False
    watch: str = "auto"
    poll_interval_ms: float = 1000.0
    worker_nice: int | None = None
    metrics: str | None = None
    applier: bool = True
    history: int = 10
    etcd_timeout_ms: float = 5000.0
    etcd_progress_ms: float = 600000.0
    etcd_user: str | None = None
    etcd_password_file: str | None = None
    etcd_ca_file: str | None = None
    etcd_cert_file: str | None = None
    etcd_key_file: str | None = None
    fleet: bool = True
    fleet_ttl_ms: float = 10000.0
    http_timeout_ms: float = 5000.0
    http_token_file: str | None = None
    http_ca_file: str | None = None

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

    @property
    def resolved_segment_dir(self) -> str:
        return self.segment_dir or default_segment_dir()


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
    "history": _history_length,
    "etcd_timeout_ms": _milliseconds(positive=True),
    "etcd_progress_ms": _milliseconds(positive=True),
    "etcd_user": lambda raw: raw.strip() or None,
    "etcd_password_file": _text,
    "etcd_ca_file": _text,
    "etcd_cert_file": _text,
    "etcd_key_file": _text,
    "fleet": _boolean,
    "fleet_ttl_ms": _fleet_ttl,
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
