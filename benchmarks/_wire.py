"""A counting TCP forwarder: bytes on the wire between an SSH client and a node's sshd.

SSH traffic is encrypted, so what crosses this proxy is exactly what a real network would carry
(payload + SSH framing + MACs). Point the client at ``proxy.port`` instead of the node's port.
With ``rate`` (bytes/s per direction, shared by all connections) it also paces the traffic like a link
of that speed, so benchmarks can compare tools where the network, not the CPU, is the limit.
"""

from __future__ import annotations

import socket
import threading
import time


class CountingProxy:
    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1", rate: float = 0.0):
        self.target = (target_host, target_port)
        self.rate = rate
        self._slot = {"up": 0.0, "down": 0.0}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((listen_host, 0))
        self.sock.listen(64)
        self.host, self.port = self.sock.getsockname()
        self.up = 0    # client -> node
        self.down = 0  # node -> client
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def total(self) -> int:
        return self.up + self.down

    def reset(self) -> None:
        with self._lock:
            self.up = self.down = 0

    def settle(self, quiet: float = 0.03, timeout: float = 2.0) -> None:
        """Return once no byte has crossed for ``quiet`` seconds (the client's last packets, e.g. its channel
        close, can still be in flight when its command returns), or at ``timeout``."""
        end = time.monotonic() + timeout
        last, since = self.total, time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.005)  # poll interval
            now_total = self.total
            if now_total != last:
                last, since = now_total, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for a, b, attr in ((client, server, "up"), (server, client, "down")):
                threading.Thread(target=self._pump, args=(a, b, attr), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, attr: str) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                with self._lock:
                    setattr(self, attr, getattr(self, attr) + len(data))
                    if self.rate:
                        now = time.monotonic()
                        self._slot[attr] = max(self._slot[attr], now) + len(data) / self.rate
                        wait = self._slot[attr] - now
                if self.rate and wait > 0.002:
                    time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self.sock.close()
