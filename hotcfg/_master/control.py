"""The control socket: how ``hotcfg history``, ``diff``, ``rollback`` and
``get --explain`` talk to the running master.

A Unix stream socket beside the segment, in the same private (``0700``)
directory, named after it (``<name>-<pid>-<random>.sock``), mode ``0600``.
Only the master's own user may use it: each connection's peer uid is read
from the kernel (``SO_PEERCRED``; where the platform has no such call the
connection is refused) and must equal the master's effective uid. Root is
no exception: a root peer of a non-root master is refused like any other
uid (it can read the files anyway; the socket does not need to serve it).

Protocol: one request and one response per connection, each a msgpack map
preceded by its length (4 bytes, little-endian); requests are capped at
:data:`REQUEST_MAX_BYTES`, responses at :data:`RESPONSE_MAX_BYTES`. Every
request gets ``{"ok": True, ...}`` or ``{"ok": False, "error": reason}``::

    {"cmd": "history"}                  -> {"live": G, "keep": K, "entries": [...]}
    {"cmd": "payload", "generation": G} -> {"entry": {..., "payload": bytes}}
    {"cmd": "rollback", "to": G | None,  -> {"generation": new, "from": G, "path": src}
     "author": str, "message": str}     (both optional; the history records them)
    {"cmd": "explain", "path": "a.b"}   -> {"generation": G, "value": v, "from": [...],
                                            "layers": [...], ...} (``_layers.explain``)
    {"cmd": "publish", "timeout_s": T}  -> {"generation": G, "rejected": reason | None,
                                            "note": text | None}

``publish`` reads the source now and publishes it if it changed
(``Publisher.publish_now``, for ``hotcfg wait``): G holds the source's
content, or is the live generation when that content is refused
(``rejected``, the master's reason). It waits for a running publish at
most T seconds (capped at :data:`ROLLBACK_WAIT_S`), then is refused as busy.

The server is a daemon thread in the master that accepts and hands each
connection to a short-lived thread (at most :data:`MAX_CLIENTS` at once,
more are refused), with a timeout on every read and write: a slow or
broken client costs one thread for :data:`IO_TIMEOUT_S` at most and never
touches the publishing path. A rollback waits for a running publish (or a
hanging validator) for :data:`ROLLBACK_WAIT_S`, then is refused as busy.

Fork story: a forked worker must not hold a socket it does not serve. The
listening socket and open connections are closed in the child
(``os.register_at_fork``), without removing the socket file (the master's),
and the server object is inert there. The file is removed when the master
closes the publisher.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import msgpack

from .._content import layers as _layers
from .._errors import ControlError, HotcfgError
from .._segment import payload as _payload
from .._segment.shm import SUFFIX as SEGMENT_SUFFIX
from .._segment.snapshot import split_path
from . import history as _history
from .publisher import Publisher

_logger = logging.getLogger(__name__)

SUFFIX = ".sock"
REQUEST_MAX_BYTES = 64 * 1024
RESPONSE_MAX_BYTES = _history.MAX_FILE_BYTES + (1 << 20)
IO_TIMEOUT_S = 5.0
ROLLBACK_WAIT_S = 10.0
MAX_CLIENTS = 4
#: The answer when :data:`MAX_CLIENTS` connections are served already.
TOO_MANY = "busy: too many clients"
_LENGTH = struct.Struct("<I")
# sun_path is 108 bytes on Linux, 104 on the BSDs; longer paths are reached
# through /proc/self/fd (Linux) instead.
_SUN_PATH_MAX = 100

_LIVE: weakref.WeakSet[ControlServer] = weakref.WeakSet()
_BY_PUBLISHER: weakref.WeakKeyDictionary[Publisher, ControlServer] = (
    weakref.WeakKeyDictionary()
)


def socket_path(segment_path: str) -> str:
    """The control socket of the master that owns ``segment_path``."""
    base = segment_path
    if base.endswith(SEGMENT_SUFFIX):
        base = base[: -len(SEGMENT_SUFFIX)]
    return base + SUFFIX


# -- framing -----------------------------------------------------------------


def _recv_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    """``n`` bytes, all by ``deadline`` (monotonic): a client trickling a
    byte now and then cannot hold a thread past it."""
    chunks, remaining = [], n
    while remaining:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ControlError("the message did not arrive in time")
        sock.settimeout(left)
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ControlError("connection closed mid-message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def send_message(
    sock: socket.socket, message: dict[str, Any], *, max_bytes: int
) -> None:
    body: bytes = msgpack.packb(message, use_bin_type=True)
    if len(body) > max_bytes:
        raise ControlError(f"message of {len(body)} bytes exceeds {max_bytes}")
    sock.sendall(_LENGTH.pack(len(body)) + body)


def recv_message(sock: socket.socket, *, max_bytes: int) -> dict[str, Any]:
    """One length-prefixed msgpack map.

    Raises:
        ControlError: closed early, too large, or not a map.
        OSError: the socket failed or timed out.
    """
    deadline = time.monotonic() + (sock.gettimeout() or IO_TIMEOUT_S)
    (length,) = _LENGTH.unpack(_recv_exactly(sock, _LENGTH.size, deadline))
    if length > max_bytes:
        raise ControlError(f"message of {length} bytes exceeds {max_bytes}")
    body = _recv_exactly(sock, length, deadline)
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=True)
    # msgpack documents no narrower base class for unpacking errors.
    except Exception as exc:
        raise ControlError(f"undecodable message: {type(exc).__name__}") from exc
    if not isinstance(message, dict):
        raise ControlError("message is not a map")
    return message


# -- peer credentials --------------------------------------------------------


def peer_uid(sock: socket.socket) -> int | None:
    """The connected peer's uid from the kernel, or None where this platform
    cannot tell (then the connection is refused)."""
    if sys.platform.startswith("linux") and hasattr(socket, "SO_PEERCRED"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        _pid, uid, _gid = struct.unpack("3i", creds)
        return int(uid)
    # LOCAL_PEERCRED (macOS, FreeBSD) returns a struct xucred whose layout
    # differs between them; rather than guess, refuse.
    return None


def refusal(uid: int | None, *, own_uid: int) -> str | None:
    """Why a peer is refused, or None when it may talk to this master."""
    if uid is None:
        return "cannot verify the peer's uid on this platform; refused"
    if uid != own_uid:
        return f"uid {uid} is not the service's uid {own_uid}; refused"
    return None


# -- requests ----------------------------------------------------------------


def _generation(request: dict[str, Any], key: str, *, optional: bool) -> int | None:
    value = request.get(key)
    if value is None and optional:
        return None
    if type(value) is not int or value <= 0:
        raise ControlError(f"{key!r} must be a positive integer")
    return int(value)


def _text(request: dict[str, Any], key: str) -> str | None:
    """An optional text field of a request; None when absent or empty.

    Raises:
        ControlError: not text.
    """
    value = request.get(key)
    if value is not None and type(value) is not str:
        raise ControlError(f"{key!r} must be text")
    return value or None


def handle(publisher: Publisher, request: dict[str, Any]) -> dict[str, Any]:
    """Answer one request (in a connection thread of the master).

    Raises:
        HotcfgError: the request is refused, with the reason.
    """
    history = publisher.history
    command = request.get("cmd")
    if command == "history":
        return {
            "live": publisher.generation,
            "keep": history.keep,
            # Only a Gunicorn master keeps files; a standalone process never.
            "standalone": publisher.files is None,
            "source": publisher.source.location,
            "entries": [e.describe() for e in history.entries],
        }
    if command == "payload":
        wanted = _generation(request, "generation", optional=False)
        assert wanted is not None
        entry = history.find(wanted)
        if entry is None:
            raise ControlError(_not_kept(wanted, history))
        return {"entry": {**entry.describe(), "payload": entry.payload}}
    if command == "rollback":
        live = publisher.generation
        to = _generation(request, "to", optional=True)
        entry = history.before(live) if to is None else history.find(to)
        if entry is None:
            if to is None:
                raise ControlError(f"no generation before {live} in the history")
            raise ControlError(_not_kept(to, history))
        if entry.generation == live:
            raise ControlError(f"generation {live} is the live one already")
        new = publisher.republish(
            entry,
            timeout_s=ROLLBACK_WAIT_S,
            author=_text(request, "author"),
            message=_text(request, "message"),
        )
        if new is None:
            raise ControlError(
                f"the content of generation {entry.generation} is live already "
                f"(generation {live})"
            )
        return {
            "generation": new,
            "from": entry.generation,
            "path": publisher.source.location,
        }
    if command == "explain":
        return _explain(publisher, request.get("path"))
    if command == "publish":
        timeout_s = request.get("timeout_s", ROLLBACK_WAIT_S)
        if type(timeout_s) not in (int, float):
            raise ControlError("'timeout_s' must be a number of seconds")
        current = publisher.publish_now(timeout_s=min(timeout_s, ROLLBACK_WAIT_S))
        return {
            "generation": current.generation,
            "rejected": current.rejected,
            "note": current.note,
        }
    raise ControlError(f"unknown command {command!r}")


EXPLAIN_ATTEMPTS = 5


def _explain(publisher: Publisher, path: object) -> dict[str, Any]:
    """Where the live value at ``path`` comes from: the layers' documents
    the publisher kept for the live generation (a rollback's and the
    cache's too: that document, then the environment), else the one plain
    source it was published from."""
    if not isinstance(path, str):
        raise ControlError("'path' must be a dotted key path")
    for _ in range(EXPLAIN_ATTEMPTS):
        live = publisher.live_layers
        # Under the write lock, copied out whole: a publish that grows the
        # segment closes the mapping read here.
        with publisher.write_lock:
            snapshot = _payload.decode(publisher.segment.buffer)
            generation = snapshot.generation
            data = snapshot.to_dict()
            del snapshot
        # The record is set just after the commit; another generation here
        # means a publish went through in between: look again.
        if live is not None and live[0] == generation:
            break
        if live is None and generation == 0:
            raise ControlError("nothing is published yet")
        time.sleep(0.01)
    else:
        raise ControlError("busy publishing; ask again")
    assert live is not None
    layers = live[1]
    if layers is None:
        layers = (_layers.Layer(publisher.source.location, data),)
    answer = _layers.explain(layers, split_path(path), data)
    answer["generation"] = generation
    return answer


def _not_kept(generation: int, history: _history.History) -> str:
    kept = [e.generation for e in history.entries]
    if not kept:
        return f"generation {generation} is not in the history (it is empty)"
    return (
        f"generation {generation} is not in the history "
        f"(kept: {kept[0]} to {kept[-1]}, HOTCFG_HISTORY={history.keep})"
    )


# -- the server --------------------------------------------------------------


@contextlib.contextmanager
def _address(path: str) -> Iterator[str]:
    """A ``sun_path`` for ``path``: itself if short enough, else a short
    name through an open descriptor of its directory (Linux)."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield path
        return
    directory, name = os.path.split(path)
    if not os.path.isdir("/proc/self/fd"):
        raise ControlError(f"socket path too long for this platform: {path}")
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


class ControlServer:
    """The master's control socket and the thread that serves it.

    Args:
        path: where to bind (the directory must be private; see module doc).
        publisher: the publisher the requests are about.
    """

    def __init__(self, path: str, publisher: Publisher) -> None:
        self.path = path
        self.publisher = publisher
        self.own_uid = os.geteuid()
        self._owner_pid = os.getpid()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._closing = False

    @property
    def _active(self) -> bool:
        return os.getpid() == self._owner_pid and not self._closing

    def start(self) -> None:
        """Bind, restrict to ``0600``, listen, and serve from a daemon thread.

        Raises:
            OSError: the socket cannot be created.
        """
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _address(self.path) as address:
                listener.bind(address)
            # Bound but not listening: nobody can connect before the mode is set.
            os.chmod(self.path, 0o600)
            listener.listen(16)
            listener.settimeout(1.0)  # so close() is noticed without a wake-up
        except BaseException:
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise
        self._listener = listener
        _LIVE.add(self)
        self._thread = threading.Thread(
            target=self._serve, name="hotcfg-control", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        listener = self._listener
        while listener is not None and self._active:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._active:
                    _logger.exception("hotcfg: control socket accept failed")
                    continue
                return
            self._connections.add(conn)
            if self._slots.acquire(blocking=False):
                threading.Thread(
                    target=self._serve_one,
                    args=(conn,),
                    name="hotcfg-control-client",
                    daemon=True,
                ).start()
            else:
                self._finish(conn, {"ok": False, "error": TOO_MANY})

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            self._finish(conn, self.answer(conn))
        finally:
            self._slots.release()

    def answer(self, conn: socket.socket) -> dict[str, Any]:
        """Read one request from ``conn`` and compute the response (the uid
        check comes first: a refused peer's request is never read)."""
        conn.settimeout(IO_TIMEOUT_S)
        try:
            reason = refusal(peer_uid(conn), own_uid=self.own_uid)
        except OSError as exc:
            reason = f"cannot read the peer's credentials: {exc}"
        if reason is not None:
            _logger.warning("hotcfg: control socket: %s", reason)
            return {"ok": False, "error": reason, "denied": True}
        try:
            request = recv_message(conn, max_bytes=REQUEST_MAX_BYTES)
        except HotcfgError as exc:
            return {"ok": False, "error": str(exc)}
        except OSError as exc:
            return {"ok": False, "error": f"reading the request failed: {exc}"}
        try:
            return {"ok": True, **handle(self.publisher, request)}
        except HotcfgError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # never kill the thread; say what happened
            _logger.exception("hotcfg: control request failed")
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def _finish(self, conn: socket.socket, response: dict[str, Any]) -> None:
        try:
            conn.settimeout(IO_TIMEOUT_S)
            send_message(conn, response, max_bytes=RESPONSE_MAX_BYTES)
        except (OSError, HotcfgError) as exc:
            _logger.debug("hotcfg: control response not delivered: %s", exc)
        finally:
            self._connections.discard(conn)
            conn.close()

    def close(self) -> None:
        """Stop serving and remove the socket file (the creating process only)."""
        if os.getpid() != self._owner_pid or self._closing:
            return
        self._closing = True
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
            listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _forget_in_child(self) -> None:
        # The child's copies only: the master keeps serving its own.
        self._closing = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for conn in list(self._connections):
            conn.close()
        self._connections.clear()
        self._thread = None


def remove_stale_sockets(directory: str, *, name: str) -> None:
    """Remove sockets of ``name`` whose segment is gone (a ``kill -9``ed
    master's; its segment is removed by the next master)."""
    with contextlib.suppress(OSError):
        for entry in os.listdir(directory):
            if not (entry.startswith(name + "-") and entry.endswith(SUFFIX)):
                continue
            segment = entry[: -len(SUFFIX)] + SEGMENT_SUFFIX
            if not os.path.exists(os.path.join(directory, segment)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, entry))


def start(publisher: Publisher) -> ControlServer | None:
    """Serve ``publisher``'s control socket (idempotent). A socket that
    cannot be created is logged; publishing does not depend on it."""
    existing = _BY_PUBLISHER.get(publisher)
    if existing is not None or os.getpid() != publisher.segment.owner_pid:
        return existing
    path = socket_path(publisher.segment.path)
    remove_stale_sockets(os.path.dirname(path), name=publisher.settings.name)
    server = ControlServer(path, publisher)
    try:
        server.start()
    except (OSError, HotcfgError) as exc:
        _logger.warning("hotcfg: no control socket at %s: %s", path, exc)
        return None
    _BY_PUBLISHER[publisher] = server
    publisher.on_close(server.close)
    return server


# -- the client --------------------------------------------------------------


class ControlUnavailable(ControlError):
    """No master serves the control socket (not there, or not listening)."""


class ControlRefused(ControlError):
    """The master answered, and refused (its reason is the message): the
    command's "no", unlike a socket that did not answer."""


class ControlDenied(ControlRefused):
    """The master refused this user (another uid): access, not an answer."""


def request(
    path: str, message: dict[str, Any], *, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Send one request to the master at ``path`` and return its answer.

    Raises:
        ControlUnavailable: nothing serves ``path`` (no master there, or
            one that serves no control socket).
        ControlDenied: this user is refused (another uid).
        ControlRefused: refused, with the master's reason.
        ControlError: no answer in time, or a broken answer.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        with _address(path) as address:
            try:
                sock.connect(address)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise ControlUnavailable(
                    f"cannot talk to the master at {path}: {exc}"
                ) from exc
        # Refused before it was read: the reason is still waiting to be read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            send_message(sock, message, max_bytes=REQUEST_MAX_BYTES)
        response = recv_message(sock, max_bytes=RESPONSE_MAX_BYTES)
    except OSError as exc:
        if isinstance(exc, ControlError):
            raise
        raise ControlError(f"cannot talk to the master at {path}: {exc}") from exc
    finally:
        sock.close()
    if response.get("ok") is not True:
        why = str(response.get("error", "refused without a reason"))
        raise (ControlDenied if response.get("denied") else ControlRefused)(why)
    return response


def _after_fork_in_child() -> None:
    for server in list(_LIVE):
        server._forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
