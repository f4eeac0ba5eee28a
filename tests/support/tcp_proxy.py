"""A TCP proxy a test can shut and reopen: a real outage of the server behind it.

Used in front of PostgreSQL, so the event store loses its connections mid-work and then
finds the port refusing new ones, as in a real outage; subclasses watch the bytes and cut
chosen exchanges.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class ProxiedConnection:
    """One client connection through a :class:`TcpProxy` and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; :meth:`shut` drops every connection and stops
    listening (clients get "connection refused"), :meth:`reopen` listens on the same port.

    Subclasses watch the bytes: :meth:`_relay` may refuse to pass some on, which cuts the
    connection (:meth:`_cut`); :meth:`_connection` makes the per-connection state they keep."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._connections: list[ProxiedConnection] = []
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    def open(self) -> int:
        assert self._listener is None, "already open"
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self.port

    reopen = open

    def _connection(self, client: socket.socket, upstream: socket.socket) -> ProxiedConnection:
        return ProxiedConnection(client, upstream)

    def _relay(self, connection: ProxiedConnection, data: bytes, to_server: bool) -> bool:
        """Whether to pass ``data`` on; False cuts the connection instead."""
        return True

    def _cut(self, connection: ProxiedConnection) -> None:
        self._drop(connection)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # shut
            if self._listener is not listener:  # shut meanwhile: refuse
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            connection = self._connection(client, upstream)
            with self._lock:
                if self._listener is not listener:  # shut meanwhile
                    self._close(connection)
                    return
                self._connections.append(connection)
                self.accepted += 1
            for to_server in (True, False):
                threading.Thread(
                    target=self._pump, args=(connection, to_server), daemon=True
                ).start()

    def _pump(self, connection: ProxiedConnection, to_server: bool) -> None:
        source, sink = (
            (connection.client, connection.upstream)
            if to_server
            else (connection.upstream, connection.client)
        )
        try:
            while data := source.recv(65536):
                if not self._relay(connection, data, to_server):
                    self._cut(connection)
                    return
                sink.sendall(data)
        except OSError:
            pass
        self._drop(connection)

    def _drop(self, connection: ProxiedConnection) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)
        self._close(connection)

    @staticmethod
    def _close(connection: ProxiedConnection) -> None:
        for sock in (connection.client, connection.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def shut(self) -> None:
        """The outage: stop listening and cut every open connection."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            listener.close()
        for connection in connections:
            self._close(connection)

    def close(self) -> None:
        self.shut()
