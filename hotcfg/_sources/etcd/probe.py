"""Master side: the member probe of an etcd watch, in a thread of its own.

TCP says nothing of a member frozen (a GC pause, a stalled disk, a paused
VM: its kernel still acknowledges) or behind a black hole until keepalive
gives up, and etcd's progress notifications come every 10 minutes unless
the cluster says otherwise. So while a watch stream has been silent for
:data:`PROBE_AFTER_S`, the probing thread (``hotcfg-etcd-probe``) asks its
member whether it answers at all (:class:`Probe`); if not within
:data:`PROBE_DEADLINE_S` (``HOTCFG_ETCD_TIMEOUT_MS`` when shorter), it cuts
the stream, which the watcher then leaves for the next endpoint from the
last revision + 1, losing nothing.

What the thread needs of the watch is :class:`Probed`, which the watch
passes itself as: this module imports neither the watch nor the source.
Fork story: the probe's connection lives in the probing thread only, its
socket listed in ``forksafe`` (``connection``) like every other; the
thread does not exist in a child.
"""

from __future__ import annotations

import http.client
import logging
import time
from typing import Protocol

from . import connection
from .access import EtcdAccess
from .client import Unavailable, cut_off, endpoint_text

_logger = logging.getLogger(__name__)

#: A watch stream silent this long has its member probed.
PROBE_AFTER_S = 2.0
#: The longest a probe may take (``HOTCFG_ETCD_TIMEOUT_MS`` when shorter).
PROBE_DEADLINE_S = 2.0


class Probed(Protocol):
    """A watch as the probing thread sees it (``watch.EtcdWatch``)."""

    def silent_stream(
        self,
    ) -> tuple[http.client.HTTPConnection, tuple[str, int]] | None:
        """Wait until the open stream has been silent for
        :data:`PROBE_AFTER_S`: it and its member; None when stopping."""

    def member_answered(
        self, stream: http.client.HTTPConnection, endpoint: tuple[str, int]
    ) -> None:
        """``stream``'s member answered a probe: the stream is not dead."""

    def cut(self, stream: http.client.HTTPConnection, reason: str) -> None:
        """End ``stream`` (if still the open one) for ``reason``."""


class Probe:
    """Asks a member whether it answers at all: ``GET /version``, which the
    member serves itself (no auth, no raft, no gRPC call behind it), on a
    connection kept open between probes, so a quiet watch costs one small
    request every :data:`PROBE_AFTER_S` and no new connection or TLS
    handshake. Lives in the probing thread only; its socket is listed in
    ``forksafe`` like every other."""

    def __init__(self, access: EtcdAccess) -> None:
        self._access = access
        self._conn: http.client.HTTPConnection | None = None
        self._endpoint: tuple[str, int] | None = None

    def ask(self, endpoint: tuple[str, int], deadline_s: float) -> None:
        """Return once ``endpoint`` has answered, within ``deadline_s``.

        Raises:
            Unavailable: no answer in time (or none at all).
        """
        deadline = time.monotonic() + deadline_s
        if self._endpoint != endpoint or (self._conn and self._conn.sock is None):
            self.close()
        while True:
            reused = self._conn is not None
            try:
                if self._conn is None:
                    self._conn = connection.connect(
                        endpoint, deadline_s, access=self._access
                    )
                    self._endpoint = endpoint
                conn = self._conn
                connection.within(conn, deadline)
                conn.request("GET", "/version")
                connection.within(conn, deadline)
                response = conn.getresponse()
                response.read(connection.CHUNK)
                if response.will_close or not response.isclosed():
                    self.close()
                return
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # A kept-open connection the member closed while idle
                # fails at once: once more, on a new one.
                if reused and not isinstance(exc, TimeoutError):
                    continue
                raise Unavailable(
                    f"{endpoint_text(endpoint)}: {cut_off(exc, self._access)}"
                ) from exc

    def close(self) -> None:
        conn, self._conn, self._endpoint = self._conn, None, None
        if conn is not None:
            connection.close(conn)


def probe_while_silent(
    watch: Probed, *, access: EtcdAccess, timeout_s: float, location: str
) -> None:
    """The probing thread: while a stream is open and silent, probe its
    member, and cut the stream when the member has no answer in time.
    Nothing raises out of the thread (the stream then goes on unprobed).

    Args:
        timeout_s: ``HOTCFG_ETCD_TIMEOUT_MS``; a probe gets at most
            :data:`PROBE_DEADLINE_S`.
        location: names the source in the log.
    """
    probe = Probe(access)
    deadline_s = min(timeout_s, PROBE_DEADLINE_S)
    try:
        while True:
            due = watch.silent_stream()
            if due is None:
                return
            stream, endpoint = due
            try:
                probe.ask(endpoint, deadline_s)
            except Unavailable:
                watch.cut(
                    stream,
                    f"{endpoint_text(endpoint)}: the watch was silent and a "
                    f"probe had no answer within {deadline_s:g} s",
                )
                continue
            watch.member_answered(stream, endpoint)
    except Exception:  # never out of the thread; the stream goes on unprobed
        _logger.exception("hotcfg: error probing %s", location)
    finally:
        probe.close()
