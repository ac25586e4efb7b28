"""A TCP proxy for fault tests: cut every open connection at once, and refuse new ones for a while."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``.

    ``cut`` closes every open connection and refuses new ones until ``restore`` (a database
    outage); ``drop`` closes the open ones and keeps accepting (a network blip).
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refusing = False
        self.refused = 0
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            with self._lock:
                if self._refusing:
                    self.refused += 1
                    client.close()  # the peer reads EOF: "server closed the connection unexpectedly"
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    def _close(self, *socks: socket.socket) -> None:
        for s in socks:
            with self._lock:
                self._open.discard(s)
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> int:
        """Refuse new connections and close the open ones; returns how many connections were open."""
        with self._lock:
            self._refusing = True
            socks = list(self._open)
        self._close(*socks)
        return len(socks) // 2

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    def drop(self) -> None:
        """Close the open connections; new ones are accepted."""
        self.cut()
        self.restore()

    def close(self) -> None:
        self._server.close()
        self.cut()
