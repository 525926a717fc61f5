"""Every hotcfg setting, resolved once: explicit argument > ``HOTCFG_*`` > default.

=====================  ==============================  =======================
environment variable   meaning                          default
=====================  ==============================  =======================
HOTCFG_SOURCE          path of the config file          (required)
HOTCFG_FORMAT          yaml, json or toml               from the file suffix
HOTCFG_DEBOUNCE_MS     quiet time after file events     100
HOTCFG_SIGNAL          hint signal name, or ``none``    SIGURG
HOTCFG_VALIDATOR       ``module:function`` validator    none
HOTCFG_SCHEMA          path of a JSON Schema file       none
HOTCFG_MODEL           ``module:Class`` to fit          none
HOTCFG_MAX_BYTES       largest config file accepted     8388608 (8 MiB)
HOTCFG_SEGMENT_DIR     where the shared segment lives   /dev/shm/hotcfg-<uid>
HOTCFG_NAME            segment name prefix              hotcfg
HOTCFG_START_EMPTY     start with {} if the source is   false
                       bad at startup (else refuse)
HOTCFG_WATCH           auto, events or poll             auto
HOTCFG_POLL_INTERVAL_MS
                       how often the file is stat'ed    1000
                       and the watcher checked (ms)
HOTCFG_WORKER_NICE     nice value Gunicorn workers      unchanged
                       set for themselves (-20..19)
=====================  ==============================  =======================
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ._errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
WATCH_MODES = ("auto", "events", "poll")


def default_segment_dir() -> str:
    """``/dev/shm/hotcfg-<uid>`` (RAM-backed), else the temp dir's equivalent."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(base, f"hotcfg-{os.geteuid()}")


def parse_signal(value: str) -> int | None:
    """``"SIGURG"``, ``"URG"`` or ``"23"`` -> the number; ``"none"`` -> None."""
    text = value.strip().upper()
    if text in {"NONE", "OFF", "0", ""}:
        return None
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else f"SIG{text}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ConfigError(f"unknown signal {value!r}", source="HOTCFG_SIGNAL") from None


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
    max_bytes: int = 8 * 1024 * 1024
    segment_dir: str | None = None
    name: str = "hotcfg"
    start_empty: bool = False
    watch: str = "auto"
    poll_interval_ms: float = 1000.0
    worker_nice: int | None = None

    @classmethod
    def resolve(
        cls, environ: Mapping[str, str] | None = None, **explicit: Any
    ) -> Settings:
        """Explicit keyword arguments win over ``HOTCFG_*`` variables.

        Raises:
            ConfigError: a variable's value cannot be understood.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(variable(f.name))
            if raw is not None:
                values[f.name] = _convert(f.name, raw)
        values.update({k: v for k, v in explicit.items() if v is not None})
        if isinstance(values.get("hint_signal"), str):
            values["hint_signal"] = parse_signal(values["hint_signal"])
        if values.get("source") is not None:
            values["source"] = os.fspath(values["source"])
        return replace(cls(), **values)

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from a framework's own configuration (Flask's ``app.config``,
        Django's ``settings.HOTCFG``), keys named like the ``HOTCFG_*`` variables.

        The values go through the same parsing as the variables, so ``50``,
        ``"50"``, ``True`` and ``"yes"`` mean what they mean there. They win
        over the environment: the application's configuration is the more
        deliberate choice. ``None`` leaves a setting to the environment.

        Raises:
            ConfigError: an unknown key, or a value that cannot be understood.
        """
        env = dict(os.environ if environ is None else environ)
        known = {variable(f.name) for f in fields(cls)}
        for key, value in values.items():
            if key not in known:
                raise ConfigError("unknown hotcfg setting", source=key)
            if value is not None:
                env[key] = _as_text(value)
        return cls.resolve(env)

    def differences(self, other: Settings, variables: Iterable[str]) -> list[str]:
        """Which of ``variables`` (``HOTCFG_*`` names) differ between two settings."""
        by_variable = {variable(f.name): f.name for f in fields(self)}
        differing = []
        for var in variables:
            name = by_variable[var]
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "source" and mine and theirs:
                mine, theirs = os.path.abspath(mine), os.path.abspath(theirs)
            if mine != theirs:
                differing.append(var)
        return differing

    @property
    def resolved_segment_dir(self) -> str:
        return self.segment_dir or default_segment_dir()


def variable(name: str) -> str:
    """The ``HOTCFG_*`` variable of a :class:`Settings` field."""
    return "HOTCFG_SIGNAL" if name == "hint_signal" else f"HOTCFG_{name.upper()}"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    return str(value)


def _convert(name: str, raw: str) -> Any:
    var = variable(name)
    try:
        if name == "hint_signal":
            return parse_signal(raw)
        if name in {"debounce_ms"}:
            value: Any = float(raw)
            if value < 0:
                raise ValueError("negative")
            return value
        if name == "max_bytes":
            return int(raw)
        if name == "poll_interval_ms":
            value = float(raw)
            if not value > 0:
                raise ValueError("must be a positive number of milliseconds")
            return value
        if name == "worker_nice":
            if not raw.strip():
                return None
            nice = int(raw)
            if not -20 <= nice <= 19:
                raise ValueError("a nice value is between -20 and 19")
            return nice
        if name == "watch":
            mode = raw.strip().lower()
            if mode not in WATCH_MODES:
                raise ValueError(f"expected one of {', '.join(WATCH_MODES)}")
            return mode
        if name == "start_empty":
            lowered = raw.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError("expected true or false")
            return lowered in _TRUE
        return raw or None
    except ValueError as exc:
        raise ConfigError(f"invalid value: {exc}", source=var) from exc
