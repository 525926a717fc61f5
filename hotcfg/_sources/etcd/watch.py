"""Master side: following an etcd key or prefix: the watch stream, its
reconnections and their backoff, over the gateway ``client``.

``POST /v3/watch`` on the gateway streams newline-separated JSON watch
responses (docs/design.md, "etcd: the client"). Following the key:

* read it (``range``), then watch from that revision + 1;
* apply each watch response whole (the source's ``apply``: its last event
  is the key's state at its revision), then hand the change to the
  publisher's thread;
* on a broken stream, an error (``etcdserver: no leader``: every request
  asks for a leader, so a member cut off from quorum ends the watch), no
  word for longer than the progress interval, or a member that does not
  answer a probe (``probe``: a member frozen or behind a black hole keeps
  its TCP connection open and silent): reconnect to the next endpoint
  after a jittered exponential backoff, from the last applied revision + 1;
* on compaction, a cancelled watch or a response too large to apply (many
  events at once): read the key again in full and watch anew, and log it.

What the watch needs of the source is :class:`Followed` (no import of it).
Fork story: the stream lives in the watcher thread only, its socket listed
in ``forksafe`` (``connection``): a worker forked meanwhile closes its copy
at once, and has none of the threads.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..follower import Follower
from ..locations import EtcdTarget
from .access import EtcdAccess
from .answer import LineReader, Overflow
from .client import (
    STALE_AUTH,
    AccessDenied,
    TokenRefused,
    Unavailable,
    after_failure,
    endpoint_text,
    error_message,
    in_process_order,
    last_words,
    refusal,
    request_headers,
    summary,
    tls_failure,
    token_for,
)
from .connection import CHUNK, close, connect
from .probe import PROBE_AFTER_S, probe_while_silent

_logger = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.05
#: The first retry after a stream that worked waits a uniform random time in
#: [0, this]: a member's restart breaks every host's stream at once, and a
#: window this wide spreads their reconnections instead of landing them
#: within 50 ms of each other (docs/decisions/0069).
RECONNECT_WINDOW_S = 1.5
BACKOFF_MAX_S = 3.0
#: A stream that fails this soon after its watch was created, with nothing
#: else said, did not recover the watch.
SHAKY_S = 1.0


def retry_delay(
    failures: int, *, after_healthy: bool, window_s: float = RECONNECT_WINDOW_S
) -> float:
    """How long to wait before the next attempt, with full jitter (uniform
    in [0, cap]): after the first failure of a stream that worked, over
    ``window_s``, so a fleet that loses one member does not come back in
    one burst; then an exponential cap from :data:`BACKOFF_FIRST_S` up to
    :data:`BACKOFF_MAX_S` (docs/decisions/0069)."""
    if failures <= 1 and after_healthy:
        return random.uniform(0.0, window_s)
    cap = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(failures, 16))
    return random.uniform(0.0, cap)


class Followed(Protocol):
    """A source as its watch sees it (``source.EtcdSource``)."""

    target: EtcdTarget
    access: EtcdAccess
    timeout_s: float
    progress_s: float

    @property
    def location(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def answer_bytes(self) -> int: ...
    @property
    def string_limit(self) -> int: ...
    def watched(self) -> dict[str, str]: ...
    def needs_read(self) -> bool: ...
    def read_from(self, endpoint: tuple[str, int]) -> None: ...
    def apply(self, result: dict[str, Any]) -> bool: ...
    def fail(self, reason: str, *, denied: bool = False) -> None: ...
    def recovered(self) -> bool: ...
    def unwatched(self) -> None: ...


def _shutdown(conn: http.client.HTTPConnection) -> None:
    """Wake a thread blocked reading ``conn``'s stream (it then reads the
    end). The caller holds the watch's lock, under which the watcher
    unlists its stream before closing it: so the descriptor shut down is
    still this connection's, never a number reused meanwhile."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class EtcdWatch(Follower):
    """Three threads: one follows etcd; one (``_sources.follower``) calls
    ``on_change`` with the newest state, so a slow publish never stalls the
    stream; one probes the followed member while the stream is silent, so a
    member frozen or cut off without a FIN is left within seconds, whatever
    the cluster's progress-notification interval."""

    def __init__(self, source: Followed, on_change: Callable[[], object]) -> None:
        super().__init__(source.location, on_change)
        self.source = source
        # Under self._cond: the stream open now, its member, why the
        # probing thread cut it.
        self._stream: http.client.HTTPConnection | None = None
        self._stream_at: tuple[str, int] = in_process_order(source.target.endpoints)[0]
        self._cut: str | None = None
        # monotonic: the stream's last word, or its member's last answer to
        # a probe. Written without the lock: a late read only delays a probe.
        self._heard = 0.0
        # Also under self._cond (the probing thread may find the watch works):
        self._failures = 0  # in a row, since the watch last worked
        self._reasons: list[Unavailable] = []  # this round's, one per endpoint
        self._reported: tuple[str, bool] | None = None  # the problem recorded
        self._created_at = 0.0  # monotonic: this stream's watch was created
        self._answered = False  # this stream brought more than "created"
        self._shaky = False  # the last stream ended right after "created"
        self._fault: str | None = None  # the last unexpected error logged
        self.probes = 0  # answered (the probing thread's)

    def start(self) -> None:
        self._start(self._follow, "hotcfg-etcd")
        probing = threading.Thread(
            target=probe_while_silent,
            args=(self,),
            kwargs={
                "access": self.source.access,
                "timeout_s": self.source.timeout_s,
                "location": self.source.location,
            },
            name="hotcfg-etcd-probe",
            daemon=True,
        )
        self._threads.append(probing)
        probing.start()
        _logger.info(
            "hotcfg: watching %s from revision %d",
            self.source.location,
            self.source.revision + 1,
        )

    def notice(self) -> None:
        with self._cond:
            self._pending = True
            self._cond.notify_all()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            stream, self._stream = self._stream, None
            if stream is not None:
                _shutdown(stream)  # wakes the watcher from its read
            self._cond.notify_all()
        self._join(timeout_s)
        self.source.unwatched()

    def _follow(self) -> None:
        source = self.source
        # This process's random start, then round the list (0069).
        endpoints = in_process_order(source.target.endpoints)
        index = 0
        reread = source.revision == 0
        while not self._stopping:
            endpoint = endpoints[index]
            try:
                if reread:
                    source.read_from(endpoint)
                    reread = False
                    _logger.info(
                        "hotcfg: read %s in full at revision %d",
                        source.location,
                        source.revision,
                    )
                    with self._cond:
                        self._recovered(endpoint_text(endpoint))
                    self.notice()
                self._watch(endpoint)
                reread = True  # compacted or cancelled: read in full at once
            except Unavailable as exc:
                if self._stopping:
                    return
                if self._failures == 0:  # a working stream broke
                    endpoints, index = after_failure(endpoints, index), 0
                index = (index + 1) % len(endpoints)
                with self._cond:
                    delay = self._failed(exc, endpoints[index])
                    if not self._stopping:
                        self._cond.wait(delay)
            except Exception as exc:
                # A fault of ours: logged once per kind, never a flood.
                fault = f"{type(exc).__name__}: {exc}"
                if fault != self._fault:
                    self._fault = fault
                    _logger.exception("hotcfg: error following %s", source.location)
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(BACKOFF_MAX_S)

    def _failed(self, exc: Unavailable, next_endpoint: tuple[str, int]) -> float:
        """Count a failure (the caller holds ``_cond``); how long to wait
        before trying ``next_endpoint``.

        The first failure in a row is logged. Each round of them (every
        endpoint once) is recorded as the source's problem, with each one's
        reason (the first is why the watch was left), whenever the round's
        reasons differ from those recorded: the publisher logs each new one
        once, and status shows the reason of now, not the first one's.
        """
        source = self.source
        rounds = len(source.target.endpoints)
        self._ended()
        self._failures += 1
        failures = self._failures
        if (failures - 1) % rounds == 0:  # a round begins
            self._reasons.clear()
        self._reasons.append(exc)
        if failures == 1:
            _logger.warning(
                "hotcfg: lost the etcd watch of %s (%s); reconnecting to "
                "%s from revision %d",
                source.location,
                exc,
                endpoint_text(next_endpoint),
                source.revision + 1,
            )
        if failures % rounds == 0:
            reason, denied = summary(self._reasons)
            if self._reported != (reason, denied):
                self._reported = (reason, denied)
                source.fail(reason, denied=denied)
                self.notice()
        return retry_delay(failures, after_healthy=not self._shaky)

    def _ended(self) -> None:
        """The last stream failed (the caller holds ``_cond``). One that
        failed right after etcd created its watch, with nothing else said,
        was no recovery: the next creation does not clear the problem or the
        backoff (a member or a proxy that answers every watch with something
        unreadable is retried ever more slowly, and logged once); a response
        after it does, or an answer to a probe once it has been quiet."""
        if self._created_at and not self._answered:
            self._shaky = time.monotonic() - self._created_at < SHAKY_S
        self._created_at = 0.0

    def _recovered(self, where: str) -> None:
        """The watch works again (the caller holds ``_cond``): forget the
        failures and the problem."""
        self._shaky, self._fault = False, None
        self._failures, self._reported = 0, None
        if self.source.recovered():
            _logger.info(
                "hotcfg: following %s again at %s from revision %d",
                self.source.location,
                where,
                self.source.revision + 1,
            )
            self.notice()

    def _watch(self, endpoint: tuple[str, int]) -> None:
        """Stream watch responses from ``endpoint`` until compaction or
        cancellation (returns) or a failure (raises :class:`Unavailable`).
        A token refused when the watch is created (it expired while the
        last stream was open, or the member restarted) is replaced by
        authenticating again, once."""
        try:
            self._watch_once(endpoint)
        except TokenRefused as exc:
            if self._stopping:
                return
            _logger.info(
                "hotcfg: etcd refused the auth token (%s); authenticating again", exc
            )
            self._watch_once(endpoint)

    def _watch_once(self, endpoint: tuple[str, int]) -> None:
        source = self.source
        access = source.access
        where = endpoint_text(endpoint)
        token = token_for(endpoint, access, source.timeout_s)
        try:
            conn = connect(endpoint, source.timeout_s, access=access)
        except ssl.SSLError as exc:
            raise tls_failure(where, exc, access) from exc
        except OSError as exc:
            raise Unavailable(f"{where}: {exc.strerror or exc}") from exc
        with self._cond:
            if self._stopping:
                close(conn)
                return
            self._stream, self._stream_at, self._cut = conn, endpoint, None
            self._heard = time.monotonic()
            self._cond.notify_all()  # the probing thread waits for a stream
        try:
            self._stream_from(conn, where, token)
        except Unavailable as exc:
            with self._cond:
                cut, self._cut = self._cut, None
            if cut is not None:  # the probing thread ended it: say why
                raise Unavailable(cut) from exc
            raise
        finally:
            with self._cond:
                if self._stream is conn:
                    self._stream = None
            close(conn)

    def _stream_from(
        self, conn: http.client.HTTPConnection, where: str, token: str | None
    ) -> None:
        """Create the watch on ``conn`` and handle what it streams, until
        a response asks for a full read (returns) or the stream fails."""
        source = self.source
        access = source.access
        request = {
            "create_request": {
                **source.watched(),
                "start_revision": source.revision + 1,
                "progress_notify": True,
            }
        }
        silence_s = source.timeout_s  # until the stream has begun
        try:
            body = json.dumps(request).encode()
            conn.request("POST", "/v3/watch", body, request_headers(token))
            response = conn.getresponse()
            if response.status != 200:
                answer = response.read(65536)
                raise refusal(where, response.status, answer, token, access)
            assert conn.sock is not None
            # Longer than the progress interval: a silent stream is a dead
            # one (the probes find a silent member sooner).
            silence_s = source.progress_s * 1.5 + source.timeout_s
            conn.sock.settimeout(silence_s)
            # Every value over the limit is left out (its size kept); a
            # response over this even so is not applied: read in full.
            budget = source.answer_bytes * 4 // 3 + 65536
            reader = LineReader(string_limit=source.string_limit, budget=budget)
            while True:
                chunk = response.read1(CHUNK)
                self._heard = time.monotonic()
                if not chunk:
                    last = reader.end()
                    words = (
                        last_words(last)
                        if isinstance(last, bytes)
                        else "the watch stream ended"
                    )
                    raise Unavailable(f"{where}: {words}")
                for line in reader.feed(chunk):
                    if self._handle(line, where, token):
                        return
        except TimeoutError as exc:
            raise Unavailable(f"{where}: no word for {silence_s:.1f} s") from exc
        except ssl.SSLError as exc:
            raise tls_failure(where, exc, access) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise Unavailable(f"{where}: {exc or type(exc).__name__}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Unavailable(f"{where}: not an etcd v3 watch response") from exc

    def _handle(self, line: bytes | Overflow, where: str, token: str | None) -> bool:
        """One watch response; True when the key must be read in full again.

        Raises:
            TokenRefused: the watch was not created: ``token`` expired.
            AccessDenied: the watch was not created: the user may not read.
            ValueError: not JSON.
        """
        source = self.source
        if isinstance(line, Overflow):
            # Many events at once (a watch catching up), or many keys under
            # a prefix: what they leave is read in full instead.
            _logger.info(
                "hotcfg: a watch response for %s of %d bytes is over what "
                "HOTCFG_MAX_BYTES allows; reading it in full",
                source.location,
                line.size,
            )
            with self._cond:
                self._answered = True
            return True
        message = json.loads(line)
        if "error" in message:
            why = error_message(json.dumps(message).encode())
            raise Unavailable(f"{where}: {why}")
        result = message["result"]
        compacted = int(result.get("compact_revision") or 0)
        if compacted:
            _logger.warning(
                "hotcfg: etcd compacted %s past revision %d (to %d); reading it "
                "in full again",
                source.location,
                source.revision,
                compacted,
            )
            return True
        if result.get("canceled"):
            reason = str(result.get("cancel_reason") or "")
            # A refused watch is answered "created" and "canceled" at once.
            if token is not None and (
                "invalid auth token" in reason or STALE_AUTH in reason
            ):
                source.access.forget(token)
                raise TokenRefused(f"{where}: {reason}")
            if "permission denied" in reason:
                if token is not None:  # granted since, maybe: ask anew
                    source.access.forget(token)
                raise AccessDenied(f"{where}: {reason}")
            _logger.warning(
                "hotcfg: etcd cancelled the watch of %s (%s); reading it in full again",
                source.location,
                result.get("cancel_reason") or "no reason given",
            )
            return True
        if result.get("created"):
            with self._cond:
                self._created_at, self._answered = time.monotonic(), False
                if not self._shaky:
                    self._recovered(where)
            return False
        if source.needs_read() and result.get("events"):
            _logger.info(
                "hotcfg: %s changed at revision %s; reading it in full (what "
                "it held was too large to follow change by change)",
                source.location,
                result.get("header", {}).get("revision", "?"),
            )
            return True
        changed = source.apply(result)
        if not self._answered:
            with self._cond:
                self._answered = True
                if self._failures:  # after a shaky creation: this one works
                    self._recovered(where)
        if changed:
            _logger.debug(
                "hotcfg: %s changed at revision %d", source.location, source.revision
            )
            self.notice()
        return False

    def silent_stream(
        self,
    ) -> tuple[http.client.HTTPConnection, tuple[str, int]] | None:
        """Wait until the open stream has been silent for
        :data:`PROBE_AFTER_S`: it and its member; None when stopping
        (``probe.Probed``)."""
        with self._cond:
            while not self._stopping:
                stream = self._stream
                if stream is None:
                    self._cond.wait()
                    continue
                left = self._heard + PROBE_AFTER_S - time.monotonic()
                if left <= 0:
                    return stream, self._stream_at
                self._cond.wait(left)
            return None

    def member_answered(
        self, stream: http.client.HTTPConnection, endpoint: tuple[str, int]
    ) -> None:
        """``stream``'s member answered a probe (``probe.Probed``)."""
        self.probes += 1
        with self._cond:
            if self._stream is stream:
                self._heard = time.monotonic()
                if self._created_at and self._failures:
                    # Quiet since a shaky creation, and its member
                    # answers: the watch works.
                    self._recovered(endpoint_text(endpoint))

    def cut(self, stream: http.client.HTTPConnection, reason: str) -> None:
        """End ``stream`` if it is still the open one: the probing thread
        found its member silent (``probe.Probed``)."""
        with self._cond:
            if self._stream is stream and not self._stopping:
                self._cut = reason
                _shutdown(stream)
