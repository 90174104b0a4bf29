"""Warm containers for the Docker backend: booted, worker preloaded, waiting for a spec.

Booting a container and importing the vision stack takes about a second on a real
engine; spawning a session in a warm one takes milliseconds. The pool keeps
``size`` containers warm, refilled by one background thread after each take.
It starts filling on the second take: a one-off ``codedance exec`` boots one
container and no more, while a runtime opening many sessions has a warm pool
from its third session on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from codedance.sandboxes.docker_session import WarmContainer

__all__ = ["ContainerPool"]


class ContainerPool:
    """``size`` warm containers made by ``boot``; ``take`` never waits for the filler."""

    def __init__(self, boot: Callable[[], WarmContainer], size: int) -> None:
        self.boot, self.size = boot, size
        self.ready: list[WarmContainer] = []
        self.closed = False
        self.takes = 0
        self.last_error: Exception | None = None
        self._lock = threading.Lock()
        self._filler: threading.Thread | None = None

    def take(self) -> WarmContainer:
        """A warm container from the pool, or a freshly booted one when it is empty."""
        while True:
            with self._lock:
                container = self.ready.pop(0) if self.ready else None
                self.takes += 1
                kick = self.takes > 1
            if kick:
                self._kick()
            if container is None:
                return self.boot()
            if container.alive():
                return container
            container.discard()  # its relay ended while it waited; try the next

    def fill(self) -> None:
        """Start filling now (a runtime about to open many sessions)."""
        with self._lock:
            self.takes = max(self.takes, 1)
        self._kick()

    def _kick(self) -> None:
        with self._lock:
            if self.closed or (self._filler is not None and self._filler.is_alive()):
                return
            self._filler = threading.Thread(
                target=self._fill, name="codedance-docker-pool", daemon=True
            )
            self._filler.start()

    def _fill(self) -> None:
        while True:
            with self._lock:
                if self.closed or len(self.ready) >= self.size:
                    return
            try:
                container = self.boot()
            except Exception as exc:  # the next take boots in the foreground and reports it
                self.last_error = exc
                return
            if not self._keep(container):
                container.discard()
                return

    def _keep(self, container: WarmContainer) -> bool:
        with self._lock:
            if self.closed:
                return False
            self.ready.append(container)
            return True

    def close(self) -> None:
        """Stop refilling and discard the waiting containers."""
        with self._lock:
            self.closed = True
            ready, self.ready = self.ready, []
            filler = self._filler
        for container in ready:
            container.discard()
        if filler is not None:
            filler.join(timeout=60)
