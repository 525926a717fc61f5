"""Worker side: the applier, which switches an idle worker when it is hinted.

The hint signal's handler may not decode or run callbacks (it runs between
two bytecodes of whatever the main thread was doing, possibly inside a lock
the switch needs). So it only marks the reader stale and writes one byte to
a socket pair (:meth:`Applier.wake`); a daemon thread blocked on the other
end reads it and calls the apply function (``Reader.refresh()``: read,
decode, swap, run callbacks, record in the worker table). A worker that
receives no request is therefore current within milliseconds, and its
``on_change`` callbacks run, instead of waiting for the next request.

Why a socket pair and not a pipe: under gevent, ``threading`` and
``socket`` are monkey-patched before Gunicorn's ``post_worker_init``, so the
thread is a greenlet and ``recv`` on a patched socket waits in the hub,
cooperatively; a blocking ``os.read`` on a pipe would stop the hub and
every request of the worker. The writing side uses ``os.write`` on a
non-blocking descriptor: a plain system call, never a gevent switch (which
a signal handler that interrupted the hub could not make), and a full
buffer (``EAGAIN``) already means a wake-up is pending.

Two ways to wait, chosen by :func:`mode_for`:

* ``signal`` (threads: sync, gthread, asgi workers): the hint signal is
  blocked in the worker's main thread, so every thread started later
  inherits the block, and the applier thread takes it with ``sigwait``. The
  kernel delivers it to that thread at once, whatever the others are doing:
  a main thread blocked in a ``recv`` that Gunicorn restarts after signals
  (``SA_RESTART``: a client connected but silent) would run a Python
  handler only when its data arrives, and no request ever sees an
  ``EINTR``. A thread the application started before (at import) may still
  take the signal: the Python handler then runs in the main thread and
  wakes the applier with ``pthread_kill``. Only for a signal whose default
  action is to ignore it (``SIGURG``, ``SIGWINCH``), because child
  processes inherit the block.
* ``socket`` (gevent, or another hint signal): the handler writes a byte to
  the socket pair, as above.

Fork story: an applier belongs to the process that started it. A forked
child inherits its descriptors but not its thread, so the child closes the
inherited pair and forgets the applier (``os.register_at_fork``); a
Gunicorn worker starts its own in ``post_worker_init``, after the fork.

Imports no part of hotcfg: the apply function is passed in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import weakref
from collections.abc import Callable

# Signals whose default action is to ignore them: blocking one in a process
# (and so in the children it starts) changes nothing for it.
_IGNORED_BY_DEFAULT = frozenset(
    int(getattr(signal, name))
    for name in ("SIGURG", "SIGWINCH")
    if hasattr(signal, name)
)


def mode_for(signum: int) -> str:
    """``"signal"`` where the applier can take the hint signal itself, else
    ``"socket"`` (gevent's and eventlet's patched threads are green threads
    of one OS thread: a ``sigwait`` there would stop the hub)."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    patched = gevent_monkey is not None and gevent_monkey.is_module_patched("threading")
    # eventlet (Gunicorn up to 25): green threads too, and one OS thread.
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    patched = patched or (
        eventlet_patcher is not None and eventlet_patcher.is_monkey_patched("thread")
    )
    if patched or signum not in _IGNORED_BY_DEFAULT:
        return "socket"
    if not hasattr(signal, "sigwait") or not hasattr(signal, "pthread_kill"):
        return "socket"
    return "signal"


_logger = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[Applier] = weakref.WeakSet()


class Applier:
    """A daemon thread that calls ``apply()`` after each :meth:`wake`.

    Wake-ups that arrive while ``apply()`` runs are coalesced into one more
    call, so a burst of publishes costs at most two switches.

    Args:
        apply: switches to the newest generation; its exceptions are logged.
        name: the thread's name (shown by ``py-spy`` and in tracebacks).
    """

    def __init__(
        self,
        apply: Callable[[], object],
        *,
        signum: int | None = None,
        name: str = "hotcfg-applier",
        poll_s: float | None = None,
    ) -> None:
        self._apply = apply
        self._signum = signum  # set: wait for this signal (blocked here first)
        # Set: also apply this often without a wake-up (a peer whose hint
        # may be lost: ``_runtime``), a generation check when nothing changed.
        self._poll_s = poll_s
        self._pid = os.getpid()
        self._receive, self._send = socket.socketpair()
        self._send.setblocking(False)
        self._send_fd = self._send.fileno()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        _LIVE.add(self)

    def start(self) -> Applier:
        if self._signum is not None:
            # Blocked in the calling (main) thread before the applier starts,
            # so it and every thread started later inherit the block.
            signal.pthread_sigmask(signal.SIG_BLOCK, {self._signum})
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        """Ask for one ``apply()`` soon. Safe in a signal handler: one
        non-blocking ``write``, nothing else."""
        if self._closed:
            return
        if self._signum is not None:
            ident = self._thread.ident
            if ident is not None:
                with contextlib.suppress(OSError, ValueError):
                    signal.pthread_kill(ident, self._signum)
            return
        try:
            os.write(self._send_fd, b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the buffer is full: a wake-up is pending already
        except OSError:
            pass  # closed meanwhile (shutdown); nothing left to wake

    def _wait(self) -> bool:
        """Block until woken; False when the applier is closing."""
        if self._signum is not None:
            if self._poll_s is not None:
                signal.sigtimedwait({self._signum}, self._poll_s)
            else:
                signal.sigwait({self._signum})
            return not self._closed
        if self._poll_s is not None:
            self._receive.settimeout(self._poll_s)
        try:
            data = self._receive.recv(4096)
        except TimeoutError:
            return not self._closed
        except OSError:
            return False  # closed under us
        return bool(data) and not self._closed

    def _run(self) -> None:
        while self._wait():
            try:
                self._apply()
            # The apply function runs user callbacks (logged by the reader);
            # whatever escapes must not end the thread, or the worker would
            # fall back to switching only at its next request.
            except BaseException:
                _logger.exception("hotcfg: applying a new generation failed")

    def close(self) -> None:
        """Stop the thread (it ends after the ``apply()`` it may be running)."""
        if self._closed:
            return
        self._closed = True
        if self._signum is not None and self._thread.is_alive():
            with contextlib.suppress(OSError, ValueError):
                signal.pthread_kill(self._thread.ident or 0, self._signum)
        # Shutting the sending side down ends the thread's recv() with b"";
        # the receiving socket is closed by the thread's owner only after
        # that, so the thread never reads a descriptor number reused since.
        with contextlib.suppress(OSError):
            self._send.shutdown(socket.SHUT_WR)
        self._send.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        if not self._thread.is_alive():
            self._receive.close()

    def _forget_in_child(self) -> None:
        # No thread in the child: close the inherited descriptors only, and
        # give the child back the signal the applier was taking.
        self._closed = True
        if self._signum is not None:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {self._signum})
        for sock in (self._send, self._receive):
            fd = sock.detach()
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _forget_in_child() -> None:
    for applier in list(_LIVE):
        applier._forget_in_child()
    _LIVE.clear()


os.register_at_fork(after_in_child=_forget_in_child)
