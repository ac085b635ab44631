"""A TCP proxy on 127.0.0.1 that a test can cut and restore, to lose a server on purpose."""

from __future__ import annotations

import selectors
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream (host, port) or unix socket path.

    ``stop()`` closes the listener and every forwarded connection, as a server that went
    away would; ``start()`` again listens on the same port.
    """

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        self.upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.setblocking(False)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(self.upstream)
        else:
            sock = socket.create_connection(self.upstream, timeout=5)
        sock.setblocking(False)
        return sock

    def _run(self, listener: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is listener:
                        client, _addr = listener.accept()
                        client.setblocking(False)
                        try:
                            upstream = self._connect_upstream()
                        except OSError:
                            client.close()
                            continue
                        peers[client], peers[upstream] = upstream, client
                        sel.register(client, selectors.EVENT_READ, None)
                        sel.register(upstream, selectors.EVENT_READ, None)
                        continue
                    if sock not in peers:  # closed earlier in this batch with its peer
                        continue
                    try:
                        data = sock.recv(65536)
                        if data:
                            peers[sock].setblocking(True)
                            peers[sock].sendall(data)
                            peers[sock].setblocking(False)
                            continue
                    except OSError:
                        pass
                    other = peers.pop(sock)
                    peers.pop(other, None)
                    for s in (sock, other):
                        sel.unregister(s)
                        s.close()
        finally:
            for s in list(peers):
                s.close()
            sel.close()
            listener.close()
