"""PURE: a staged rollout on an etcd key, as the keys beside it hold it.

A config key ``K`` (say ``/app/config``) keeps its value the plain
document, so ``etcdctl get K`` shows what the fleet serves. hotcfg keeps
two more keys right after it, in the range ``[K, K + "$")``
(:func:`watch_range`) that a master watches as one, so every key one etcd
transaction writes reaches a master in one watch response:

* ``K#canary`` (:func:`canary_key`): a canary, JSON (:class:`Canary`): the
  content for the selected hosts, the selector, the main revision it was
  pushed on, who pushed it and why. Only while a canary runs.
* ``K#audit`` (:func:`audit_key`): JSON (:class:`Audit`), who made the last
  change of ``K`` or of its canary, and why. Every ``push``, ``promote``
  and ``abort`` writes it in the transaction that makes the change, so
  the audit of a revision of ``K`` is ``K#audit`` as of that revision when
  both have that ``mod_revision``; etcd's history of the two keys is the
  audit trail, as far back as compaction allows.

A master whose host label (``HOTCFG_HOST``) the canary's selector picks
(:meth:`Selector.selects`) serves the canary's content; every other master
serves ``K``. A percentage picks hosts by a stable hash of their label
(:func:`bucket`), so the same hosts are picked again by every master, by
``hotcfg status --fleet`` and by ``hotcfg promote``.

Must not import ``os``, ``mmap``, ``signal``, ``threading``, ``time`` or
``socket``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..._errors import ConfigError

#: ``K`` + this is ``K``'s canary.
CANARY_SUFFIX = "#canary"
#: ``K`` + this is the audit record of ``K``'s last change.
AUDIT_SUFFIX = "#audit"
#: The first byte after every key hotcfg keeps beside ``K`` (``#`` + 1).
_RANGE_END_SUFFIX = b"$"
#: The actions an audit record names.
ACTIONS = ("push", "canary", "promote", "abort", "rollback")
#: Longest author or message kept; a longer one is cut, not refused.
TEXT_MAX_CHARS = 1024
#: The changed key paths an audit record keeps, each cut to this length:
#: the record stays well under what a master reads of it.
PATHS_KEPT = 100
PATH_MAX_CHARS = 200


def canary_key(key: str) -> str:
    """The key holding ``key``'s canary."""
    return key + CANARY_SUFFIX


def audit_key(key: str) -> str:
    """The key holding the audit record of ``key``'s last change."""
    return key + AUDIT_SUFFIX


def watch_range(key: str) -> tuple[bytes, bytes]:
    """The range (``key``, ``range_end``) covering ``key``, its canary and
    its audit record, for one watch or one read. It covers little else: a
    key that is ``key`` followed by a byte below ``$`` (a blank, ``!``,
    ``"``, ``#``), which the reader ignores."""
    start = key.encode()
    return start, start + _RANGE_END_SUFFIX


def bucket(host: str) -> float:
    """Where ``host`` falls in ``[0, 100)``: the first 8 bytes of the
    SHA-256 of its label. Stable across processes, versions and machines
    (``hash()`` is salted per process): a ``10%`` canary picks the same
    hosts every time it is asked."""
    head = hashlib.sha256(host.encode("utf-8")).digest()[:8]
    return int.from_bytes(head, "big") * 100.0 / 2.0**64


@dataclass(frozen=True, slots=True)
class Selector:
    """Which hosts a canary goes to: named hosts, or a percentage of all."""

    hosts: tuple[str, ...] = ()
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> Selector:
        """``--canary``'s value: ``web-1,web-2`` or ``10%``.

        Raises:
            ConfigError: empty, a percentage outside (0, 100], or a host
                label with a blank in it.
        """
        text = text.strip()
        if text.endswith("%"):
            try:
                percent = float(text[:-1])
            except ValueError:
                percent = math.nan
            if not 0 < percent <= 100:  # also NaN
                raise ConfigError(
                    f"--canary {text}: a percentage is above 0 and at most 100 "
                    "(like 10%)"
                )
            return cls(percent=percent)
        hosts = tuple(dict.fromkeys(h.strip() for h in text.split(",") if h.strip()))
        if not hosts:
            raise ConfigError(
                "--canary: name the hosts (web-1,web-2: their HOTCFG_HOST) "
                "or a percentage (10%)"
            )
        for host in hosts:
            if any(c.isspace() for c in host):
                raise ConfigError(f"--canary: host label {host!r} has a blank")
        return cls(hosts=hosts)

    def selects(self, host: str) -> bool:
        """Whether the master labelled ``host`` is on the canary."""
        if self.percent is not None:
            return bucket(host) < self.percent
        return host in self.hosts

    def describe(self) -> str:
        """As ``--canary`` takes it: ``web-1,web-2`` or ``10%``."""
        if self.percent is not None:
            return f"{self.percent:g}%"
        return ",".join(self.hosts)

    def to_json(self) -> dict[str, Any]:
        if self.percent is not None:
            return {"percent": self.percent}
        return {"hosts": list(self.hosts)}

    @classmethod
    def from_json(cls, raw: object) -> Selector:
        """Raises: ValueError: not a selector."""
        if isinstance(raw, dict) and set(raw) == {"percent"}:
            percent = raw["percent"]
            if type(percent) in (int, float) and 0 < percent <= 100:
                return cls(percent=float(percent))
        if isinstance(raw, dict) and set(raw) == {"hosts"}:
            hosts = raw["hosts"]
            if (
                isinstance(hosts, list)
                and hosts
                and all(isinstance(h, str) and h for h in hosts)
            ):
                return cls(hosts=tuple(hosts))
        # Named by its shape, never its content: the reason reaches logs,
        # status and the fleet record, and the value may be large.
        shape = sorted(raw)[:5] if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"not a canary selector (hosts or percent): {shape}"[:200])


def _text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name, "")
    if not isinstance(value, str):
        raise ValueError(f"{name} is not text")
    return value[:TEXT_MAX_CHARS]


def _number(raw: dict[str, Any], name: str) -> float:
    value = raw.get(name, 0)
    if type(value) not in (int, float):
        raise ValueError(f"{name} is not a number")
    return float(value)


def _object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` as a JSON object. Raises: ValueError: it is not one."""
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{what} is not a JSON object")
    return raw


@dataclass(frozen=True, slots=True)
class Canary:
    """What ``K#canary`` holds.

    Attributes:
        selector: the hosts that serve ``content``.
        content: the document's bytes, exactly as pushed (UTF-8 text: a
            YAML, JSON or TOML document).
        base_revision: ``K``'s ``mod_revision`` when the canary was pushed
            (0: ``K`` did not exist); ``promote`` refuses when ``K`` moved
            since, unless forced.
        author: who pushed it (``user@host`` or ``--author``).
        message: why (``-m``).
        at: when (Unix time, by the pushing host's clock).
    """

    selector: Selector
    content: bytes
    base_revision: int = 0
    author: str = ""
    message: str = ""
    at: float = 0.0

    def encode(self) -> bytes:
        """The JSON bytes written to ``K#canary``.

        Raises:
            ConfigError: the content is not UTF-8 text.
        """
        try:
            text = self.content.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("a canary's content must be UTF-8 text") from None
        doc = {
            "format": "hotcfg-canary",
            "version": 1,
            "selector": self.selector.to_json(),
            "content": text,
            "base_revision": self.base_revision,
            "author": self.author[:TEXT_MAX_CHARS],
            "message": self.message[:TEXT_MAX_CHARS],
            "at": self.at,
        }
        return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> Canary:
        """Raises: ValueError: not a canary record (the reason)."""
        raw = _object(data, "the canary record")
        if raw.get("format") != "hotcfg-canary" or raw.get("version") != 1:
            raise ValueError("the canary record is not hotcfg-canary version 1")
        content = raw.get("content")
        if not isinstance(content, str):
            raise ValueError("the canary record has no content")
        base = raw.get("base_revision", 0)
        if type(base) is not int or base < 0:
            raise ValueError("the canary record's base_revision is not a revision")
        return cls(
            Selector.from_json(raw.get("selector")),
            content.encode("utf-8"),
            base,
            _text(raw, "author"),
            _text(raw, "message"),
            _number(raw, "at"),
        )


@dataclass(frozen=True, slots=True)
class Audit:
    """What ``K#audit`` holds: who made a change, why, and what it was.

    Attributes:
        action: one of :data:`ACTIONS`.
        author: ``user@host`` or ``--author``.
        message: ``-m``; empty when none was given.
        at: Unix time, by the writing host's clock.
        paths: the key paths the change made differ (``db.pool.size``), as
            the writer saw them; empty when not known.
        selector: for ``canary``, the hosts (``--canary``'s form).
    """

    action: str
    author: str
    message: str = ""
    at: float = 0.0
    paths: tuple[str, ...] = field(default=())
    selector: str = ""

    def encode(self) -> bytes:
        doc = {
            "format": "hotcfg-audit",
            "version": 1,
            "action": self.action,
            "author": self.author[:TEXT_MAX_CHARS],
            "message": self.message[:TEXT_MAX_CHARS],
            "at": self.at,
            "paths": [path[:PATH_MAX_CHARS] for path in self.paths[:PATHS_KEPT]],
            "selector": self.selector,
        }
        return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> Audit:
        """Raises: ValueError: not an audit record (the reason)."""
        raw = _object(data, "the audit record")
        if raw.get("format") != "hotcfg-audit" or raw.get("version") != 1:
            raise ValueError("the audit record is not hotcfg-audit version 1")
        action = raw.get("action")
        if action not in ACTIONS:
            raise ValueError(f"the audit record's action {action!r} is unknown")
        paths = raw.get("paths", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ValueError("the audit record's paths are not text")
        return cls(
            str(action),
            _text(raw, "author"),
            _text(raw, "message"),
            _number(raw, "at"),
            tuple(paths),
            _text(raw, "selector"),
        )
