"""A TCP proxy whose open connections can be made to go silent.

:meth:`StallingProxy.stall` freezes every connection open at that moment:
held open, carrying no byte either way, as behind a frozen server or a
network black hole. Connections made later carry bytes as usual. So a
client's long-lived stream (an etcd watch) stalls while its fresh requests
are answered; :meth:`StallingProxy.resume` delivers what was held.
"""

import contextlib
import socket
import threading
import time


class StallingProxy:
    """Listens on a free 127.0.0.1 port (:attr:`port`) and forwards each
    connection to 127.0.0.1:``target_port``; :meth:`stop` closes it all."""

    def __init__(self, target_port):
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open = []  # [client, upstream, stalled]
        self._stopping = False
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def stall(self):
        """Freeze the connections open now."""
        self._hold(True)

    def resume(self):
        """Let the frozen connections carry bytes again, the held ones first."""
        self._hold(False)

    def _hold(self, stalled):
        with self._lock:
            for connection in self._open:
                connection[2] = stalled

    def _accept(self):
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            connection = [client, upstream, False]
            with self._lock:
                self._open.append(connection)
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(
                    target=self._pump, args=(src, dst, connection), daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _pump(self, src, dst, connection):
        try:
            while True:
                data = src.recv(65536)
                while connection[2] and not self._stopping:
                    time.sleep(0.02)  # held: never delivered
                if not data or self._stopping:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def stop(self):
        self._stopping = True
        self._listener.close()
        with self._lock:
            connections, self._open = self._open, []
        for client, upstream, _ in connections:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        for thread in self._threads:
            thread.join(5)
