"""A TCP proxy that fires a fault at an exact moment: when a request matching a pattern passes.

Fault tests put it between a client and a real server (Chroma), so "kill the
server during upsert" happens while the upsert request is in flight, every
time, instead of after a guessed sleep.

    with TripwireProxy(("127.0.0.1", chroma_port), b"/upsert", kill_chroma) as port:
        ...  # clients connect to port; kill_chroma() runs once, as the first upsert passes
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class TripwireProxy:
    """Forwards bytes both ways; calls ``action`` once, ``delay`` s after forwarding a chunk with ``trigger``."""

    def __init__(self, target: tuple[str, int], trigger: bytes, action: Callable[[], None],
                 delay: float = 0.0) -> None:
        self.target, self.trigger, self.action, self.delay = target, trigger, action, delay
        self.fired = threading.Event()
        self.armed = True
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="tripwire-proxy")

    def __enter__(self) -> TripwireProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the server is down: the client sees a refused/closed connection
                continue
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
                if outbound and self.armed and not self.fired.is_set() and self.trigger in chunk:
                    self.fired.set()
                    # after ``delay`` s, while the rest of the request keeps flowing
                    threading.Timer(self.delay, self.action).start()
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
