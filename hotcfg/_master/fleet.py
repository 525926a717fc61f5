"""Master side: this master's record in etcd, for ``hotcfg status --fleet``.

A Gunicorn master whose source is an etcd key keeps one record under a
lease (docs/design.md, "Fleet view")::

    /hotcfg/fleet/<the config key, percent-encoded>/<host>:<master pid>

(the host: ``HOTCFG_HOST``, by default the host name: ``_settings.host_label``)
holding JSON: the host, the master's pid, the service (``HOTCFG_NAME``), the
source, the etcd revision of the key's last change the master holds
(not moved by progress notifications: a quiet store changes no record) and
its ``track`` (``"main"``, the key's document, or ``"canary"``, the
canary's content for this host: then the revision is the canary record's;
``canary_error``: why a canary record is served by nobody), the live
generation and when it was published, the last rejection (if the live
generation is not the source's content), what the live generation holds
(``serving``: :func:`serving`), every worker's pid and applied generation,
the format the master reads the key in and the largest value it accepts
(``hotcfg push`` checks a file against them), and when the record was
written. A master that dies leaves its record to the lease
(``HOTCFG_FLEET_TTL_MS``); one that stops revokes it.

One daemon thread (``hotcfg-fleet``) keeps it: every
:data:`CHECK_INTERVAL_S` it builds the record from the segment and puts it
only if its content changed, and it renews the lease every third of its
TTL. A lease etcd no longer knows (a keep-alive answered without a TTL:
it expired while etcd was out of reach, or the cluster was restored
without it) is replaced by a new one and the record put again; a put
refused for such a lease is retried after that keep-alive. While etcd is
unreachable it retries with backoff and logs the loss once and the
recovery once; publishing never waits for it.

Every etcd call goes through :meth:`FleetRecord._call` (and
:func:`read_fleet` for the command line), over the JSON gateway client
(``_sources.etcd.client``); the record's key and content are built by the
pure functions :func:`record_key` and :func:`build_record`.

Fork story: the thread exists only in the master; a worker forked while a
call is open closes its copy of the socket (``forksafe``'s at-fork hook), and
a keeper inherited by a child is inert there (its pid check, and
``os.register_at_fork`` gives it a fresh condition): a worker never puts,
renews or revokes the master's record.

Imported only by a master following etcd (``_runtime.keep_fleet_record``) and
by ``hotcfg status --fleet``; never on a worker's request path.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._errors import UnreachableError
from .._segment import layout
from .._settings import Settings, host_label
from .._sources.etcd import client as etcd_client
from .._sources.etcd import keytree
from .._sources.etcd.access import EtcdAccess
from .._sources.etcd.client import b64
from .._sources.etcd.source import EtcdSource
from .._sources.locations import EtcdTarget, parse_etcd

if TYPE_CHECKING:
    from .publisher import Publisher

_logger = logging.getLogger(__name__)

#: How long the keeper waits for a running publish before it renews the
#: lease anyway and looks again (a validator may run for long), and how
#: soon it looks again.
BUSY_WAIT_S = 0.25
BUSY_RETRY_S = 0.25
#: Every record lives under this prefix; config keys must not.
PREFIX = "/hotcfg/fleet/"
#: How often the thread looks whether the record's content changed.
CHECK_INTERVAL_S = 0.5
BACKOFF_FIRST_S = 0.25
#: A changed record is put after a uniform random delay in [0, this]; changes
#: within it are coalesced into the one put. Every host of a fleet applies a
#: put at once: the spread turns their record writes into a ramp instead of
#: one burst through raft (docs/decisions/0069). The first record, and one
#: put again under a new lease, are not delayed.
SPREAD_S = 1.0
BACKOFF_MAX_S = 3.0
#: Largest answer read when listing the records (many masters, many workers).
LIST_MAX_BYTES = 16 * 1024 * 1024
#: ``serving`` of a master whose live generation is the key's content.
SERVING_REVISION = "revision"
#: The source label of a rollback's generation (``Publisher.republish``).
_ROLLBACK_LABEL = re.compile(r"rollback:(\d+) ")

_KEEPERS: weakref.WeakSet[FleetRecord] = weakref.WeakSet()
_BY_PUBLISHER: weakref.WeakKeyDictionary[Publisher, FleetRecord] = (
    weakref.WeakKeyDictionary()
)


# -- the record: pure ----------------------------------------------------------


def prefix_for(config_key: str) -> str:
    """The prefix of every record of masters following ``config_key``.

    The key is percent-encoded whole (``/`` included), so the prefix of one
    config key is never the beginning of another's: ``/app/a`` and
    ``/app/a/b`` give ``%2Fapp%2Fa/`` and ``%2Fapp%2Fa%2Fb/``.
    """
    return f"{PREFIX}{quote(config_key, safe='')}/"


def record_key(config_key: str, host: str, pid: int) -> str:
    """This master's record key: the prefix, then ``<host>:<pid>``."""
    return f"{prefix_for(config_key)}{quote(host, safe='')}:{pid}"


def build_record(
    *,
    host: str,
    pid: int,
    service: str,
    source: str,
    revision: int,
    generation: int,
    published_at: float,
    workers: Sequence[tuple[int, int]],
    error: str | None,
    serving: str,
    fmt: str | None,
    max_bytes: int | None,
    track: str = "main",
    canary_error: str | None = None,
) -> dict[str, Any]:
    """The record's content (without ``updated_at``, which changes at every
    put and so is not part of what "changed" means).

    Args:
        workers: ``(pid, applied generation)`` of each worker in the table.
        error: the last rejection while it stands (never a config value).
        serving: what the live generation holds (:func:`serving`).
        fmt: the format the master parses the key's value in (``format``).
        max_bytes: the largest value of the key it accepts.
        track: ``"main"`` or ``"canary"``: what the source holds for this
            host (``revision`` is the canary record's on the canary).
        canary_error: why the canary record held is served by nobody.
    """
    return {
        "host": host,
        "pid": pid,
        "service": service,
        "source": source,
        "revision": revision,
        "track": track,
        "canary_error": canary_error,
        "generation": generation,
        "published_at": published_at,
        "workers": [
            {"pid": worker_pid, "generation": applied}
            for worker_pid, applied in sorted(workers)
        ],
        "error": error,
        "serving": serving,
        "format": fmt,
        "max_bytes": max_bytes,
    }


def serving(
    *,
    generation: int,
    label: str,
    from_cache: bool,
    serves_source: bool,
    revision: int,
    error: str | None,
) -> str:
    """What a master's live generation holds, in the words the fleet view
    shows: ``"revision"`` (the key's content at the record's revision),
    ``"rollback to generation G"``, ``"cache"`` (the disk cache, since a
    start with the store out of reach, whatever the error) or ``"nothing"``
    (nothing published); with a rejection standing, ``"rejected revision
    R"`` (what was read at R was refused, or could not be read whole: the
    live generation is older), after a rollback's words if there are any:
    ``"rollback to generation 3; rejected revision 12"``.

    Args:
        generation: the live generation (0: none).
        label: the live generation's source label (the segment header's):
            ``rollback:<G> ...`` after a rollback.
        from_cache: the publisher serves its cache since it started.
        serves_source: the live content is the source's last good read
            (``Publisher.serves_source``): a rollback to what the key now
            holds again is the key's content.
        revision: the revision of the key's last change the master holds.
        error: the last rejection while it stands.
    """
    if from_cache:
        # Until the source gives a good content; the error says why not
        # (out of reach still, or what it gave was refused).
        return "cache"
    held = SERVING_REVISION
    rolled_back = _ROLLBACK_LABEL.match(label)
    if not generation:
        held = "nothing"
    elif rolled_back is not None and not serves_source:
        held = f"rollback to generation {rolled_back.group(1)}"
    if error is None:
        return held
    rejected = f"rejected revision {revision}" if revision else "rejected"
    return rejected if held == SERVING_REVISION else f"{held}; {rejected}"


def encode_record(record: Mapping[str, Any], *, updated_at: float) -> bytes:
    """The value put at the record key: the content and when it was put."""
    return json.dumps(
        {**record, "updated_at": updated_at}, sort_keys=True, separators=(",", ":")
    ).encode()


def decode_record(value: bytes) -> dict[str, Any] | None:
    """A record read back, or None for a value that is not one."""
    try:
        record = json.loads(value)
    except ValueError:
        return None
    wanted = ("host", "pid", "revision", "generation", "workers")
    if not isinstance(record, dict) or any(k not in record for k in wanted):
        return None
    if not isinstance(record["workers"], list):
        return None
    return record


def _range_end(prefix: str) -> str:
    """Every key that starts with ``prefix``, as the gateway takes it."""
    return b64(keytree.range_end(prefix.encode()))


def _lease_gone(exc: BaseException) -> bool:
    return "lease not found" in str(exc)


# -- keeping it ----------------------------------------------------------------


class FleetRecord:
    """Keeps one master's record under a lease, from a daemon thread.

    Args:
        target: the etcd endpoints and the config key.
        access: TLS and credentials, the source's own.
        content: the record's content now (:func:`build_record`); called
            from the thread.
        host: this host's label (:func:`host_label`), in the key.
        ttl_s: the lease's time to live.
        timeout_s: connecting, and each etcd call.
        spread_s: a changed record waits a random time up to this before
            its put (:data:`SPREAD_S`).
    """

    def __init__(
        self,
        target: EtcdTarget,
        content: Callable[[], dict[str, Any] | None],
        *,
        access: EtcdAccess,
        host: str,
        ttl_s: float,
        timeout_s: float,
        spread_s: float = SPREAD_S,
    ) -> None:
        self.target = target
        self.access = access
        self.key = record_key(target.key, host, os.getpid())
        self._content = content
        self._ttl = max(1, math.ceil(ttl_s))
        self._timeout_s = timeout_s
        self._owner_pid = os.getpid()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.lease: int | None = None
        self._granted_ttl = self._ttl
        self._renew_at = 0.0  # monotonic; 0: at the next look
        self._put: dict[str, Any] | None = None  # the content put under the lease
        self._spread_s = max(0.0, spread_s)
        self._due: float | None = None  # monotonic: when a changed record is put
        self.failures = 0  # in a row; 0 while etcd answers
        self.renewals = 0  # keep-alives answered
        self._unreachable = False  # the last call found no endpoint
        self._answered: tuple[str, int] | None = None  # the endpoint last to answer
        _KEEPERS.add(self)

    def start(self) -> FleetRecord:
        self._thread = threading.Thread(
            target=self._run, name="hotcfg-fleet", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, which revokes the lease as it leaves, so the
        record disappears at once (the creating process only; in a forked
        child this does nothing)."""
        if os.getpid() != self._owner_pid:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # One call in flight, then the revocation, on each endpoint.
            thread.join(self._timeout_s * 2 * len(self.target.endpoints) + 1.0)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._stopping:
                        return
                delay = self._step()
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(delay)
        finally:
            self._revoke()

    def _step(self) -> float:
        """Renew, grant or put as needed; how long to wait before the next look."""
        try:
            if self.lease is None:
                self._grant()
            elif time.monotonic() >= self._renew_at and not self._renew():
                _logger.info(
                    "hotcfg: the fleet record's lease is gone (expired or etcd lost "
                    "it); granting a new one for %s",
                    self.key,
                )
                self.lease, self._put = None, None
                return 0.0
            content = self._content()
            if content is None:  # a publish is running: look again soon
                return min(BUSY_RETRY_S, self._until_renewal())
            if content != self._put:
                wait = self._until_due()
                if wait > 0.0:
                    return min(wait, CHECK_INTERVAL_S, self._until_renewal())
                self._put_record(content)
                self._due = None
        except UnreachableError as exc:
            # A put refused for a lease etcd lost is retried after the
            # keep-alive, which then finds the lease gone.
            self._unreachable = not _lease_gone(exc)
            return self._failed(exc)
        except Exception as exc:  # the segment, a bad answer: never end the thread
            return self._failed(exc)
        self._unreachable = False
        if self.failures:
            _logger.info("hotcfg: the fleet record %s is kept again", self.key)
            self.failures = 0
        return min(CHECK_INTERVAL_S, self._until_renewal())

    def _until_renewal(self) -> float:
        return max(0.0, self._renew_at - time.monotonic())

    def _until_due(self) -> float:
        """Seconds until a changed record may be put: none for the first
        record under a lease; else a random time up to the spread, chosen at
        the first change seen and kept, so later changes join that put."""
        if self._put is None or self._spread_s <= 0.0:
            return 0.0
        now = time.monotonic()
        if self._due is None:
            self._due = now + random.uniform(0.0, self._spread_s)
        return max(0.0, self._due - now)

    def _failed(self, exc: BaseException) -> float:
        self.failures += 1
        if self.failures == 1:
            _logger.warning(
                "hotcfg: cannot keep the fleet record %s (%s); retrying, "
                "publishing is not affected",
                self.key,
                exc,
            )
        self._renew_at = 0.0  # renew first when etcd answers again
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(self.failures - 1, 8))
        return delay * random.uniform(0.5, 1.0)

    def _call(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        """One gateway call on the first endpoint that answers, starting with
        the one that answered last, each done within a quarter of the
        lease's TTL (or ``HOTCFG_ETCD_TIMEOUT_MS``, if shorter): a member that
        stops answering (frozen, or behind a black hole) costs that once,
        and a keep-alive sent a third of the TTL after the last still lands
        on another member before the lease runs out.

        Raises:
            UnreachableError: no endpoint answered (each one's reason).
        """
        deadline_s = min(self._timeout_s, self._granted_ttl / 4.0)

        def call(endpoint: tuple[str, int]) -> dict[str, Any]:
            reply = etcd_client.call(
                endpoint,
                path,
                request,
                access=self.access,
                timeout_s=deadline_s,
                max_bytes=65536,
            )
            self._answered = endpoint
            return reply

        return etcd_client.first_answer(self.target, call, first=self._answered)

    def _grant(self) -> None:
        reply = self._call("/v3/lease/grant", {"TTL": self._ttl})
        lease, ttl = int(reply["ID"]), int(reply.get("TTL") or 0)
        if not lease or ttl <= 0:
            raise ValueError(f"etcd granted no lease: {reply.get('error') or reply}")
        self.lease, self._put = lease, None
        self._granted_ttl = ttl
        self._renew_at = time.monotonic() + ttl / 3.0
        _logger.debug("hotcfg: fleet lease %x granted for %d s", lease, ttl)

    def _renew(self) -> bool:
        """One keep-alive; False when etcd no longer knows the lease.

        The gateway answers a single keep-alive POST with one streamed
        message, ``{"result": {"ID": ..., "TTL": "10"}}``; a lease that is
        gone comes back without a TTL (or with 0).
        """
        reply = self._call("/v3/lease/keepalive", {"ID": str(self.lease)})
        result = reply.get("result", reply)
        ttl = int(result.get("TTL") or 0) if isinstance(result, dict) else 0
        if ttl <= 0:
            return False
        self._granted_ttl = ttl
        self._renew_at = time.monotonic() + ttl / 3.0
        self.renewals += 1
        return True

    def _put_record(self, content: dict[str, Any]) -> None:
        value = encode_record(content, updated_at=time.time())
        self._call(
            "/v3/kv/put",
            {
                "key": b64(self.key.encode()),
                "value": b64(value),
                "lease": str(self.lease),
            },
        )
        if self._put is None:
            _logger.info(
                "hotcfg: fleet record at %s (lease TTL %d s)",
                self.key,
                self._granted_ttl,
            )
        self._put = content

    def _revoke(self) -> None:
        """Revoke the lease, which deletes the record, unless etcd is out of
        reach: then the lease runs out by itself, and the master's exit is
        not held up."""
        lease, self.lease = self.lease, None
        if lease is None or self._unreachable or os.getpid() != self._owner_pid:
            return
        try:
            self._call("/v3/lease/revoke", {"ID": str(lease)})
        except UnreachableError as exc:
            if not _lease_gone(exc):
                _logger.warning(
                    "hotcfg: cannot revoke the fleet record's lease (%s); %s "
                    "disappears when it expires",
                    exc,
                    self.key,
                )
            return
        _logger.info("hotcfg: fleet record %s removed", self.key)


def publisher_content(
    publisher: Publisher, *, host: str, wait_s: float | None = None
) -> dict[str, Any] | None:
    """The record of ``publisher``'s master now: the segment's live
    generation and worker table, read under the write lock (a publish that
    grows the segment closes the old mapping), the revision and track its
    etcd source (or etcd layer) last loaded (never one received but not yet
    published or rejected), what the live generation
    holds (:func:`serving`), and the format and size limit that source
    reads the key with.

    Args:
        wait_s: how long to wait for a publish that is running (its
            validators may take long); None waits for it.

    Returns:
        The record, or None when the publish still ran after ``wait_s``:
        the keeper keeps the lease alive and looks again.
    """
    followed = etcd_source_of(publisher.source)
    # Between publishes: the state last loaded and the generation made of
    # it (or the rejection of it) go together.
    serial = publisher.serial
    if not serial.acquire(timeout=-1 if wait_s is None else wait_s):
        return None
    try:
        with publisher.write_lock:
            buffer = publisher.segment.buffer
            header = layout.read_header(buffer)
            workers = layout.read_workers(buffer)
        track, revision, canary_error = (
            followed.loaded_state() if followed is not None else ("main", 0, None)
        )
        error = publisher.last_error
        serves_source = publisher.serves_source
    finally:
        serial.release()
    return build_record(
        host=host,
        pid=os.getpid(),
        service=publisher.settings.name,
        source=publisher.source.location,
        revision=revision,
        generation=header.generation,
        published_at=header.published_at,
        workers=[(w.pid, w.generation) for w in workers],
        error=error,
        serving=serving(
            generation=header.generation,
            label=header.source,
            from_cache=publisher.from_cache is not None,
            serves_source=serves_source,
            revision=revision,
            error=error,
        ),
        fmt=followed.fmt if followed is not None else None,
        max_bytes=followed.max_bytes if followed is not None else None,
        track=track,
        canary_error=canary_error,
    )


def etcd_source_of(source: object) -> EtcdSource | None:
    """The etcd source a master follows: its source, or the first etcd layer
    of a layered one (the fleet record names that key); None without one."""
    if isinstance(source, EtcdSource):
        return source
    for layer in getattr(source, "sources", ()):
        if isinstance(layer, EtcdSource):
            return layer
    return None


def start(publisher: Publisher) -> FleetRecord | None:
    """Keep ``publisher``'s record (idempotent), stopped and revoked when the
    publisher closes. Only for an etcd source with ``HOTCFG_FLEET`` on, and
    only in the process that created the publisher."""
    settings = publisher.settings
    followed = etcd_source_of(publisher.source)
    if not settings.fleet or followed is None:
        return None
    existing = _BY_PUBLISHER.get(publisher)
    if existing is not None or os.getpid() != publisher.segment.owner_pid:
        return existing
    host = host_label(settings)
    keeper = FleetRecord(
        followed.target,
        lambda: publisher_content(publisher, host=host, wait_s=BUSY_WAIT_S),
        access=followed.access,
        host=host,
        ttl_s=settings.fleet_ttl_ms / 1000.0,
        timeout_s=settings.etcd_timeout_ms / 1000.0,
    )
    _BY_PUBLISHER[publisher] = keeper
    publisher.on_close(keeper.stop)
    return keeper.start()


# -- reading the fleet (hotcfg status --fleet) -----------------------------------


@dataclass(frozen=True, slots=True)
class Fleet:
    """Every record under a config key's prefix, read at one revision.

    Attributes:
        records: the records, by host then pid.
        key_revision: the config key's last change (0: no such key).
        revision: the store's revision at the read.
        unreadable: values under the prefix that are not records.
    """

    records: list[dict[str, Any]]
    key_revision: int
    revision: int
    unreadable: int


def read_fleet(url: str, settings: Settings) -> Fleet:
    """Read the records of every master following ``url``'s key, and the
    key's own revision, in one transaction (one revision for both).

    Raises:
        ConfigError: ``url`` is not an ``etcd://`` key.
        UnreachableError: no endpoint answered.
    """
    target = parse_etcd(url)
    access = EtcdAccess.from_settings(settings)
    prefix = prefix_for(target.key)
    config: dict[str, Any] = {"key": b64(target.key.encode()), "keys_only": True}
    if target.is_prefix:  # its last change: the newest key under it
        config.update(
            range_end=_range_end(target.key),
            sort_order="DESCEND",
            sort_target="MOD",
            limit=1,
        )
    request = {
        "success": [
            {
                "request_range": {
                    "key": b64(prefix.encode()),
                    "range_end": _range_end(prefix),
                }
            },
            {"request_range": config},
        ]
    }

    def read(endpoint: tuple[str, int]) -> Fleet:
        reply = etcd_client.call(
            endpoint,
            "/v3/kv/txn",
            request,
            access=access,
            timeout_s=settings.etcd_timeout_ms / 1000.0,
            max_bytes=LIST_MAX_BYTES,
        )
        try:
            revision = int(reply["header"]["revision"])
            records_reply, key_reply = (
                r.get("response_range", {}) for r in reply["responses"]
            )
            key_kvs = key_reply.get("kvs") or []
            key_revision = int(key_kvs[0]["mod_revision"]) if key_kvs else 0
            records, unreadable = [], 0
            for kv in records_reply.get("kvs") or []:
                record = decode_record(base64.b64decode(kv.get("value", "")))
                if record is None:
                    unreadable += 1
                else:
                    records.append(record)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise etcd_client.not_etcd(endpoint) from exc
        records.sort(key=lambda r: (str(r.get("host")), int(r.get("pid") or 0)))
        return Fleet(records, key_revision, revision, unreadable)

    return etcd_client.first_answer(target, read)


def _after_fork_in_child() -> None:
    for keeper in list(_KEEPERS):
        keeper._cond = threading.Condition()
        keeper._thread = None  # it did not cross the fork
        keeper._stopping = True
    _BY_PUBLISHER.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
