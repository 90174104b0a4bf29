"""A pool of pre-forked local sessions, refilled in the background.

A pooled session is isolated, in its cgroup, running as its uid with its limits
and its holder waiting: everything but its inputs. Taking one costs a message
with the inputs and the holder's engine set-up, not three forks. Sessions forked
before the zygote imported a new tool bundle are dropped rather than handed out
(they would import the tools' modules from source). Filling starts with the
second session a backend opens, so a one-off ``codedance exec`` forks nothing it
does not use.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from typing import TYPE_CHECKING

from codedance.sandboxes.worker.protocol import ProtocolError, recv_message

if TYPE_CHECKING:
    from codedance.sandboxes.local import Handle, LocalSandbox
    from codedance.sandboxes.local_zygote import Zygote

__all__ = ["SessionPool"]


class SessionPool:
    """Keep ``size`` spawned sessions ready; :meth:`take` one without waiting."""

    def __init__(self, backend: LocalSandbox, size: int) -> None:
        self.backend, self.size = backend, size
        self.ready: deque[Handle] = deque()
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        self.closing = False
        self.asked = 0  # sessions asked for: a one-off user (`codedance exec`) never fills

    def take(self, zygote: Zygote) -> Handle | None:
        """A ready session forked by ``zygote`` with its current tools, or None."""
        if self.size <= 0:
            return None
        stale = []
        taken = None
        with self.cond:
            self.asked += 1
            if self.asked >= 2:
                self._start_filling()
            while self.ready:
                handle = self.ready.popleft()
                if handle.generation == zygote.generation:
                    taken = handle
                    break
                stale.append(handle)
            self.cond.notify_all()
        for handle in stale:
            self.backend.release(handle)
        return taken

    def _start_filling(self) -> None:
        if self.thread is None and not self.closing:
            self.thread = threading.Thread(
                target=self._fill, name="codedance-session-pool", daemon=True
            )
            self.thread.start()

    def _fill(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.closing or len(self.ready) < self.size)
                if self.closing:
                    return
            handle = self._spawn_one()
            if handle is None:
                with self.cond:  # back off: the zygote is restarting or the host is full
                    self.cond.wait(1.0)
                continue
            if not self._add(handle):
                self.backend.release(handle)
                return

    def _add(self, handle: Handle) -> bool:
        """Put a spawned session in the pool; False when the pool is closing."""
        with self.cond:
            if self.closing:
                return False
            self.ready.append(handle)
            return True

    def _spawn_one(self) -> Handle | None:
        try:
            handle = self.backend.spawn()
        except Exception:
            return None
        try:
            handle.sock.settimeout(60)
            header, _ = recv_message(handle.sock)
        except (ProtocolError, OSError):
            header = {}
        if header.get("op") != "spawned":
            self.backend.release(handle)
            return None
        handle.spawned = True
        return handle

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
            handles = list(self.ready)
            self.ready.clear()
        if self.thread is not None:
            self.thread.join(timeout=70)
        with self.cond:  # the backend may be used again: fill anew on the next take
            self.thread, self.closing = None, False
        for handle in handles:
            with contextlib.suppress(Exception):
                self.backend.release(handle)
