"""Master side: one etcd v3 key, or every key under a prefix, as a source.

The source holds the key's state as last applied and makes it a document
on ``load()``; it reads through ``kv``, and ``watch`` hands it each watch
response whole (:meth:`EtcdSource.apply`).

A deleted key, an empty value, a value over ``HOTCFG_MAX_BYTES`` (held as
its size only: ``answer``) or an unreachable cluster is a rejection with
its reason (:meth:`EtcdSource.load` raises ``SourceError``): the publisher
keeps the last good generation and ``hotcfg status`` shows why. Nothing a
key holds makes the source ask for the same revision again: what etcd
sends is either applied (and then rejected or published) or is no etcd
answer at all, a fault of the endpoint, retried ever more slowly.

A key ``K`` is followed with the keys hotcfg keeps beside it
(``rollout``): one read and one watch over ``[K, K + "$")`` hold ``K``,
its canary ``K#canary`` and its audit record ``K#audit`` (any other key of
the range is ignored), so every key one transaction writes (a promote puts
``K`` and deletes ``K#canary``) is applied at once, never half of it.
``load()`` serves the canary's content when its selector picks this
master's host label, else ``K``'s document (``track``). A user whose role
may read ``K`` alone is refused the range: then ``K`` alone is followed,
as before canaries, for the source's life, and a WARNING names the range
to grant (docs/decisions/0070).

A prefix (a source key ending in ``/``, :class:`EtcdPrefixSource`) is
followed the same way over the range ``[prefix, range_end(prefix))``: it
holds every key under the prefix and its value, applies each watch response
(every event of a revision: a txn putting several keys) before the change
is handed on, and ``load()`` parses each value and nests the keys
(``keytree``). No keys under the prefix is a rejection like a deleted key.
A prefix has no canary.

Fork story: no client, no connection held (they live inside one call, or
in the watch's threads). ``_sources`` imports it only for ``etcd://``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..._content import loaders, validate
from ..._errors import SourceError, UnreachableError
from ..._settings import Settings, host_label
from ..base import OneDocument
from ..files import load_document
from ..locations import EtcdTarget, parse_etcd
from . import client, keytree, rollout
from .access import EtcdAccess
from .answer import MARK, Elided, Field, Garbled, decoded
from .kv import key_text, read_key_from, read_prefix_from, read_range_from
from .track import (
    AUDIT_MAX_BYTES,
    CANARY,
    MAIN,
    Held,
    Track,
    canary_record_bytes,
    choose,
    provenance,
)
from .watch import EtcdWatch

_logger = logging.getLogger(__name__)

#: What a watch response of a key's range may carry beyond ``max_bytes``
#: (an audit record beside the key's value) before it is read in full
#: instead: a larger one (a canary near the limit with its JSON escapes, a
#: watch catching up) is correct either way, only slower.
WATCH_SLACK_BYTES = 32 * 1024


def _unheld(value: Field, max_bytes: int) -> str | None:
    """Why ``value`` cannot be published whatever it holds (over the
    limit, or not base64), or None."""
    if isinstance(value, Garbled):
        return "etcd sent it as no base64"
    size = value.size if isinstance(value, Elided) else len(value)
    if size > max_bytes:
        return f"{size} bytes, over the {max_bytes}-byte limit (HOTCFG_MAX_BYTES)"
    return None


class EtcdSource(OneDocument):
    """One etcd key holding a YAML, JSON or TOML document.

    Args:
        target: the endpoints and the key.
        fmt: the document's format.
        max_bytes: largest value accepted.
        timeout_s: connecting, and each request but the watch stream.
        progress_s: the cluster's progress-notification interval; a watch
            stream silent for longer (plus ``timeout_s``) is reconnected.
        access: TLS, the user and its token (default: plain, anonymous).
        host: this master's host label, which a canary's selector picks
            (default: the host name; ``from_settings``: ``HOTCFG_HOST``).
    """

    def __init__(
        self,
        target: EtcdTarget,
        fmt: str,
        max_bytes: int,
        *,
        timeout_s: float = 5.0,
        progress_s: float = 600.0,
        access: EtcdAccess | None = None,
        host: str | None = None,
    ) -> None:
        self.target = target
        self.host = host if host is not None else host_label(Settings())
        self.access = access if access is not None else EtcdAccess()
        self._fmt = fmt
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.progress_s = progress_s
        self._lock = threading.Lock()
        self._revision = 0  # last applied; 0: never read
        self._changed_at = 0  # the revision of the last change held
        self._value: Field | None = None  # None: no such key
        self._deleted_at = 0
        self._problem: str | None = None  # why etcd cannot be followed now
        self._denied = False  # the problem is a refusal, not unreachability
        self._watching = False
        # The range beside the key (rollout): False once etcd refused it.
        self._ranged = not target.is_prefix
        self._canary = Held()
        self._audit = Held()
        self._chosen: tuple[Held, Track] = (self._canary, Track("main"))
        self._warned_at = 0  # the canary revision last warned about
        self._provenance: rollout.Audit | None = None  # of the last load
        # held() as of the last load: what the publisher last handled.
        self._loaded_state: tuple[str, int, str | None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EtcdSource:
        """The key or the prefix (:class:`EtcdPrefixSource`) ``settings``
        name, with its access checked now.

        Raises:
            ConfigError: an etcd auth or TLS setting is incomplete or its
                file unusable, naming the variable.
        """
        assert settings.source is not None
        assert settings.format is not None
        target = parse_etcd(settings.source)
        client.set_listed_order(settings.etcd_order == "listed")
        kind = EtcdPrefixSource if target.is_prefix else cls
        return kind(
            target,
            settings.format,
            settings.max_bytes,
            timeout_s=settings.etcd_timeout_ms / 1000.0,
            progress_s=settings.etcd_progress_ms / 1000.0,
            access=EtcdAccess.from_settings(settings),
            host=host_label(settings),
        )

    @property
    def label(self) -> str:
        return self.location

    @property
    def location(self) -> str:
        hosts = ",".join(client.endpoint_text(e) for e in self.target.endpoints)
        return f"etcd://{hosts}{self.target.key}"

    @property
    def fmt(self) -> str:
        return self._fmt

    @property
    def keeps_cache(self) -> bool:
        """Yes: a master must start when etcd is down (from its cache)."""
        return True

    @property
    def revision(self) -> int:
        """The etcd revision of the key's state held now (0: never read)."""
        return self._revision

    @property
    def changed_at(self) -> int:
        """The revision of the last change to what is held for this host:
        on the canary, the canary record's ``mod_revision``; else the key's
        (or, for a prefix, the newest key's), or a deletion's; progress
        notifications leave it (0: nothing held yet). The fleet record
        shows it, so a quiet store changes no record."""
        return self.held()[1]

    @property
    def track(self) -> str:
        """What the held state serves this host: ``"main"`` (the key's
        document) or ``"canary"`` (the canary's content)."""
        return self.held()[0]

    @property
    def canary_problem(self) -> str | None:
        """Why a canary record held is served by nobody (every master
        serves the key), or None."""
        return self.held()[2]

    def held(self) -> tuple[str, int, str | None]:
        """:attr:`track`, :attr:`changed_at` and :attr:`canary_problem` of
        one state (the fleet record shows them together)."""
        with self._lock:
            canary, changed = self._canary, self._changed_at
        chosen = self._choose(canary)
        problem = self._problem_of(chosen, canary)
        if chosen.name == CANARY:
            return chosen.name, canary.mod_revision, problem
        return chosen.name, changed, problem

    def loaded_state(self) -> tuple[str, int, str | None]:
        """:meth:`held` as of the last :meth:`load` (the held state before
        any): what the publisher last published or rejected. The fleet
        record shows this, not the held state, so a record never pairs a
        revision just received with the generation before it: ``hotcfg
        promote`` would take that for a canary applied."""
        loaded = self._loaded_state
        return self.held() if loaded is None else loaded

    def _problem_of(self, chosen: Track, canary: Held) -> str | None:
        """Why the canary record ``canary`` is served by nobody, or None."""
        if chosen.unusable is None:
            return None
        where = rollout.canary_key(self.target.key)
        return f"{where} at revision {canary.mod_revision}: {chosen.unusable}"

    @property
    def provenance(self) -> rollout.Audit | None:
        """Who made the document the last ``load()`` gave, and why: the
        key's audit record of the same transaction, or the canary's author
        and message; None when not known (the publisher records it)."""
        return self._provenance

    def _choose(self, canary: Held) -> Track:
        """The track for the held canary record, decided from this host's
        label (``track.choose``), remembered for the same record."""
        held, chosen = self._chosen
        if held is not canary:
            chosen = choose(canary, host=self.host, max_bytes=self.max_bytes)
            self._chosen = (canary, chosen)
        return chosen

    @property
    def answer_bytes(self) -> int:
        """The most a read or one watch response may carry, before base64,
        with every value over the limit left out (only its size is held): a
        longer watch response is not applied, the state is read in full
        instead."""
        if self._ranged:
            return self.max_bytes + WATCH_SLACK_BYTES
        return self.max_bytes

    @property
    def string_limit(self) -> int:
        """The longest string of an answer kept: a value over ``max_bytes``
        (a canary record over its own limit) is held as its size only, and
        rejected by it."""
        if self._ranged:
            return client.string_limit_for(canary_record_bytes(self.max_bytes))
        return client.string_limit_for(self.max_bytes)

    def watched(self) -> dict[str, str]:
        """The key (and range) a watch's ``create_request`` names."""
        if self._ranged:
            start, end = rollout.watch_range(self.target.key)
            return {"key": client.b64(start), "range_end": client.b64(end)}
        return {"key": client.b64(self.target.key.encode())}

    def needs_read(self) -> bool:
        """Whether a change can be applied only by reading in full (what is
        held is not the whole state)."""
        return False

    def load(self) -> dict[str, Any]:
        """The key's document: read now, or while watching the last applied.

        Raises:
            UnreachableError: no endpoint answers.
            SourceError: etcd refused access (or its certificate was
                refused), the key absent or deleted, the value empty or too
                large.
            ConfigError: the value does not parse.
        """
        if not self._watching:
            self.read()
        with self._lock:
            problem, value, deleted_at = self._problem, self._value, self._deleted_at
            denied, changed_at = self._denied, self._changed_at
            canary, audit = self._canary, self._audit
        self._raise_problem(problem, denied=denied)
        # Decided here, from this master's own label, at every load.
        track = self._choose(canary)
        self._note_unusable(track, canary)
        self._provenance = provenance(
            track, key=Held(value, changed_at), audit=audit, canary=canary
        )
        self._loaded_state = (
            track.name,
            canary.mod_revision if track.name == CANARY else changed_at,
            self._problem_of(track, canary),
        )
        if track.name == CANARY:
            assert track.canary is not None
            return self._load_canary(track.canary, canary.mod_revision)
        key = self.target.key
        if value is None:
            if deleted_at:
                raise SourceError(
                    f"key {key} was deleted at revision {deleted_at}",
                    source=self.location,
                )
            raise SourceError(f"key {key} does not exist", source=self.location)
        unheld = _unheld(value, self.max_bytes)
        if unheld is not None:
            raise SourceError(
                f"key {key} at revision {changed_at}: {unheld}", source=self.location
            )
        assert isinstance(value, bytes)  # what else is unheld
        if not value.strip():
            raise SourceError(f"key {key} holds an empty value", source=self.location)
        return load_document(value, fmt=self._fmt, source=self.location)

    def _load_canary(self, canary: rollout.Canary, revision: int) -> dict[str, Any]:
        """The canary's content as this master's document.

        Raises:
            SourceError: the content empty or over ``max_bytes``.
            ConfigError: it does not parse.
        """
        where = self.location + rollout.CANARY_SUFFIX
        name = rollout.canary_key(self.target.key)
        size = len(canary.content)
        if size > self.max_bytes:
            raise SourceError(
                f"canary {name} at revision {revision}: its content is {size} "
                f"bytes, over the {self.max_bytes}-byte limit (HOTCFG_MAX_BYTES)",
                source=where,
            )
        if not canary.content.strip():
            raise SourceError(f"canary {name} holds an empty content", source=where)
        return load_document(canary.content, fmt=self._fmt, source=where)

    def _note_unusable(self, track: Track, canary: Held) -> None:
        """Log a canary record served by nobody, once per revision of it."""
        if track.unusable is None or canary.mod_revision == self._warned_at:
            return
        self._warned_at = canary.mod_revision
        _logger.warning(
            "hotcfg: the canary %s at revision %d is served by nobody (every "
            "master serves %s): %s",
            rollout.canary_key(self.target.key),
            canary.mod_revision,
            self.target.key,
            track.unusable,
        )

    def _raise_problem(self, problem: str | None, *, denied: bool) -> None:
        """Why etcd cannot be followed now, raised: a refusal (the store
        answered: no cache fallback) or unreachability; nothing if none."""
        if problem is None:
            return
        if denied:
            raise SourceError(problem, source=self.location)
        raise UnreachableError(problem, source=self.location)

    def refresh(self) -> None:
        """Read the store now while watching (``Source.refresh``); the
        newer of this read and the watch's state stays (:meth:`read_from`,
        :meth:`apply`). A failure is raised, not recorded: the watch's own
        view of the store, and its problem, stay as they are.

        Raises:
            UnreachableError: no endpoint answers.
            SourceError: etcd refused access.
        """
        if not self._watching:
            return  # load() reads now
        try:
            client.first_answer(self.target, self.read_from)
        except SourceError as exc:
            denied = not isinstance(exc, UnreachableError)
            self._raise_problem(exc.reason, denied=denied)

    def read(self) -> None:
        """Read the key from the first endpoint that answers, recording the
        failure of all of them as the source's problem."""
        failures = []
        for endpoint in self.target.endpoints:
            try:
                self.read_from(endpoint)
                return
            except client.Unavailable as exc:
                failures.append(exc)
        reason, denied = client.summary(failures)
        self.fail(reason, denied=denied)

    def read_from(self, endpoint: tuple[str, int]) -> None:
        """Read the key's value, its canary's and its audit record's, and
        the store's revision from ``endpoint``, in one read of the range;
        the key alone when etcd refuses the range but not the key.

        Raises:
            Unavailable: no answer, or an error from etcd.
        """
        if self._ranged:
            try:
                self._read_range_from(endpoint)
                return
            except client.AccessDenied as refused:
                try:
                    self._read_key_from(endpoint)
                except client.Unavailable:
                    raise refused from None
                self._range_refused(refused)
                return
            except client.TooLarge as exc:
                _logger.warning(
                    "hotcfg: the keys beside %s take %d bytes to read, more than "
                    "a key, its canary and its audit record may; reading the key "
                    "alone (no canary)",
                    self.target.key,
                    exc.size,
                )
        self._read_key_from(endpoint)

    def _read_range_from(self, endpoint: tuple[str, int]) -> None:
        key = self.target.key
        record_bytes = canary_record_bytes(self.max_bytes)
        state = read_range_from(
            endpoint,
            key,
            access=self.access,
            timeout_s=self.timeout_s,
            max_bytes=self.max_bytes + record_bytes + AUDIT_MAX_BYTES,
            value_bytes=record_bytes,
        )
        value, mod_revision = state.found.get(key, (None, 0))
        with self._lock:
            if state.revision < self._revision:
                return  # the watch applied newer changes meanwhile
            self._read(state.revision, mod_revision)
            self._value = value
            self._deleted_at = 0
            self._canary = Held(*state.found.get(rollout.canary_key(key), (None, 0)))
            self._audit = Held(*state.found.get(rollout.audit_key(key), (None, 0)))

    def _read_key_from(self, endpoint: tuple[str, int]) -> None:
        state = read_key_from(
            endpoint,
            self.target.key,
            access=self.access,
            timeout_s=self.timeout_s,
            max_bytes=self.max_bytes,
        )
        with self._lock:
            if state.revision < self._revision:
                return  # the watch applied newer changes meanwhile
            self._read(state.revision, state.mod_revision)
            self._value = state.value
            self._deleted_at = 0
            self._canary, self._audit = Held(), Held()

    def _range_refused(self, refused: client.Unavailable) -> None:
        """etcd refused the range but gave the key: follow the key alone
        from now on, without canaries, and say what to grant."""
        self._ranged = False
        start, end = rollout.watch_range(self.target.key)
        _logger.warning(
            "hotcfg: etcd refused reading the keys beside %s (%s): following the "
            "key alone, without canaries or audit records, until the master "
            "restarts; grant the range [%s, %s), as with `etcdctl role "
            "grant-permission ROLE read %s --prefix`",
            self.target.key,
            refused,
            start.decode(),
            end.decode(),
            self.target.key,
        )

    def _read(self, revision: int, changed_at: int) -> None:
        """A full read succeeded (the caller holds the lock): its revisions,
        and no problem any more."""
        self._revision = revision
        self._changed_at = changed_at
        self._problem = None
        self._denied = False

    def fail(self, reason: str, *, denied: bool = False) -> None:
        """Record why etcd cannot be followed now; ``denied``: it refused
        us, or we refused its certificate."""
        with self._lock:
            self._problem = client.problem_text(reason, denied=denied)
            self._denied = denied

    def recovered(self) -> bool:
        """Forget the problem; whether there was one."""
        with self._lock:
            had, self._problem = self._problem is not None, None
            self._denied = False
        return had

    def _unseen(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events after the revision held (the caller holds the lock): a
        read made meanwhile (:meth:`refresh`) holds the others already."""
        return [
            event
            for event in events
            if int(event.get("kv", {}).get("mod_revision", 0)) > self._revision
        ]

    def apply(self, result: dict[str, Any]) -> bool:
        """Apply one watch response whole; whether the key or its canary
        changed (an audit record alone changes nothing served).

        Several events of one response (a watch catching up, or one
        transaction: a promote puts the key and deletes the canary) are all
        applied before the change is handed on, each key left as its last
        event says; a response with none is a progress notification:
        everything up to its revision has been sent.
        """
        events = result.get("events") or []
        key = self.target.key
        canary_key, audit_key = rollout.canary_key(key), rollout.audit_key(key)
        with self._lock:
            if not events:
                revision = int(result.get("header", {}).get("revision", 0))
                self._revision = max(self._revision, revision)
                return False
            events = self._unseen(events)
            changed = False
            for event in events:
                kv = event.get("kv", {})
                name = key_text(kv["key"]) if "key" in kv else key
                value = (
                    None
                    if event.get("type") == "DELETE"
                    else decoded(kv.get("value", ""))
                )
                revision = int(kv.get("mod_revision", self._revision))
                self._revision = revision
                if name == key:
                    self._changed_at = revision
                    self._value = value
                    self._deleted_at = revision if value is None else 0
                    changed = True
                elif self._ranged and name == canary_key:
                    self._canary = Held(value, revision)
                    changed = True
                elif self._ranged and name == audit_key:
                    self._audit = Held(value, revision)
            return changed

    def watch(self, on_change: Callable[[], object], settings: Settings) -> EtcdWatch:
        """Follow the key from the revision read last (or read it first)."""
        watching = EtcdWatch(self, on_change)
        self._watching = True
        watching.start()
        return watching

    def unwatched(self) -> None:
        """The watch stopped: :meth:`load` reads the store again."""
        self._watching = False


class EtcdPrefixSource(EtcdSource):
    """Every key under a prefix (``target.key`` ends in ``/``), each value one
    document, nested into one mapping: ``/app/config/db/timeout`` is
    ``{"db": {"timeout": ...}}`` (docs/design.md, "etcd: a prefix as a
    mapping").

    ``max_bytes`` caps the sum of the values.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The arguments of :class:`EtcdSource`."""
        super().__init__(*args, **kwargs)
        # Replaced whole, never changed in place: load() uses it unlocked.
        self._values: dict[str, Field] = {}
        self._emptied_at = 0  # the revision that deleted the last key
        self._too_large = 0  # the last read's size, when it was too large to hold

    @property
    def answer_bytes(self) -> int:
        # Keys and etcd's fields around each value come on top of the
        # values' own bytes; the values' sum is checked against
        # max_bytes in load(), where the reason can be given.
        return 2 * self.max_bytes

    @property
    def string_limit(self) -> int:
        return client.string_limit_for(self.max_bytes)

    def watched(self) -> dict[str, str]:
        start = self.target.key.encode()
        return {
            "key": client.b64(start),
            "range_end": client.b64(keytree.range_end(start)),
        }

    def needs_read(self) -> bool:
        return self._too_large > 0

    def load(self) -> dict[str, Any]:
        """The keys under the prefix as one mapping: read now, or while
        watching the last applied state.

        Raises:
            SourceError: etcd unreachable, no keys under the prefix, a key
                with an empty value or without a place in the mapping, or
                the keys or the values together too large.
            ConfigError: a value does not parse.
        """
        if not self._watching:
            self.read()
        with self._lock:
            problem, values = self._problem, self._values
            emptied_at, denied = self._emptied_at, self._denied
            too_large, changed_at = self._too_large, self._changed_at
        self._raise_problem(problem, denied=denied)
        self._loaded_state = (MAIN, changed_at, None)
        prefix = self.target.key
        if too_large:
            raise SourceError(
                f"the keys under {prefix} at revision {changed_at} take "
                f"{too_large} bytes to read, keys and values together, over "
                f"what the {self.max_bytes}-byte limit allows (HOTCFG_MAX_BYTES)",
                source=self.location,
            )
        if not values:
            since = f" (the last was deleted at revision {emptied_at})"
            raise SourceError(
                f"no keys under {prefix}{since if emptied_at else ''}",
                source=self.location,
            )
        self._check_sizes(values, changed_at)
        parsed: dict[str, Any] = {}
        for key, value in sorted(values.items()):
            where = self.location[: -len(prefix)] + key  # etcd://hosts/key
            assert isinstance(value, bytes)  # only values over the limit are elided
            if not value.strip():
                raise SourceError(f"key {key} holds an empty value", source=where)
            parsed[key] = loaders.parse(value, fmt=self._fmt, source=where)
        data = keytree.nest(parsed, prefix=prefix, source=self.location)
        return validate.check_document(data, source=self.location)

    def _check_sizes(self, values: dict[str, Field], changed_at: int) -> None:
        """Refuse a key or a value that cannot be held (too long, not
        base64), and values over the limit together (naming the largest,
        the one to look at first).

        Raises:
            SourceError: any of them.
        """
        prefix = self.target.key
        for key, value in sorted(values.items()):
            if key.startswith(MARK):
                size = key[1:].split("/")[0]
                why = (
                    f"is {size} bytes long, over the {self.max_bytes}-byte limit"
                    if size
                    else "was sent by etcd as no base64"
                )
                raise SourceError(
                    f"a key under {prefix} at revision {changed_at} {why}",
                    source=self.location,
                )
            if isinstance(value, Garbled):
                unheld = _unheld(value, self.max_bytes)
                raise SourceError(
                    f"key {key} at revision {changed_at}: {unheld}",
                    source=self.location,
                )
        sizes = {
            key: value.size if isinstance(value, Elided) else len(value)
            for key, value in values.items()
            if not isinstance(value, Garbled)
        }
        total = sum(sizes.values())
        if total > self.max_bytes:
            largest = max(sorted(sizes), key=sizes.__getitem__)
            raise SourceError(
                f"the values under {prefix} at revision {changed_at} are {total} "
                f"bytes together, over the {self.max_bytes}-byte limit "
                f"(HOTCFG_MAX_BYTES; the largest: {largest}, {sizes[largest]} bytes)",
                source=self.location,
            )

    def read_from(self, endpoint: tuple[str, int]) -> None:
        """Read every key under the prefix and the store's revision from
        ``endpoint``; what was held before is replaced, not merged (a key
        deleted meanwhile is gone).

        Raises:
            Unavailable: no answer, or an error from etcd.
        """
        state = read_prefix_from(
            endpoint,
            self.target.key,
            access=self.access,
            timeout_s=self.timeout_s,
            max_bytes=self.answer_bytes,
            value_bytes=self.max_bytes,
        )
        with self._lock:
            if state.revision < self._revision:
                return  # the watch applied newer changes meanwhile
            self._read(state.revision, state.changed_at)
            self._values = state.values
            self._emptied_at = 0
            self._too_large = state.too_large

    def apply(self, result: dict[str, Any]) -> bool:
        """Apply one watch response whole; whether a key changed.

        etcd never splits one revision's events across responses, so every
        key a txn wrote is applied here before the change is handed on: the
        publisher sees all of them or none.
        """
        events = result.get("events") or []
        with self._lock:
            if not events:
                revision = int(result.get("header", {}).get("revision", 0))
                self._revision = max(self._revision, revision)
                return False
            events = self._unseen(events)
            if not events:
                return False
            values = dict(self._values)
            for event in events:
                kv = event.get("kv", {})
                key = key_text(kv.get("key", ""))
                if event.get("type") == "DELETE":
                    values.pop(key, None)
                else:
                    values[key] = decoded(kv.get("value", ""))
                self._revision = int(kv.get("mod_revision", self._revision))
            self._values = values
            self._changed_at = self._revision
            self._emptied_at = 0 if values else self._revision
            return True
