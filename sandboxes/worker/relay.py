"""The container's PID 1: relays frames between the host and one session, and checks them.

The relay is the only process that holds the host's stream (the container's
stdin and stdout). It runs as root with no capability but SETUID, SETGID and
KILL, marks itself non-dumpable, and starts the session's init in a
child; init (root too) forks the holder, which drops to the sandbox uid, so
model code can neither open ``/proc/1/fd``, nor ``ptrace`` the relay, nor signal it.

init already checks the holder's records against a per-run token; the relay is
a second wall for what reaches it from init. It trusts no frame it did not ask for:
it forwards exactly one reply per host request and stamps it with the request's
``seq``; a frame nobody asked for, a result past the session's own output limits
or bytes that are not frames mark the session **compromised**: it is killed,
started again from its inputs, and the record says so. A record can therefore
never be shifted onto a later run. When a run times out, processes the code
left behind (a fork bomb whose parent returned) are killed too.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from .procs import children_map, descendants
from .protocol import MAX_BLOB, MAX_HEADER, ProtocolError, send_message

_LENGTH = struct.Struct(">I")
_OUTPUT_SLACK = 200  # the worker's "[output truncated ...]" note
_READY_TIMEOUT_S = 60.0
_SYNC_TIMEOUT_S = 30.0  # an honest session is idle once it sent its result
MAX_IMAGES = 16

Frame = tuple[dict[str, Any], list[bytes]]


class FrameReader:
    """Reassembles length-prefixed frames from chunks; ProtocolError on anything malformed."""

    def __init__(self, max_header: int = MAX_HEADER, max_blob: int = MAX_BLOB) -> None:
        self.max_header, self.max_blob = max_header, max_blob
        self.buffer = bytearray()
        self.header: dict[str, Any] | None = None

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while (frame := self._next()) is not None:
            frames.append(frame)
        return frames

    def _next(self) -> Frame | None:
        if self.header is None:
            if len(self.buffer) < _LENGTH.size:
                return None
            (length,) = _LENGTH.unpack_from(self.buffer)
            if length > self.max_header:
                raise ProtocolError(f"a header of {length} bytes exceeds {self.max_header}")
            if len(self.buffer) < _LENGTH.size + length:
                return None
            self.header = _parse_header(bytes(self.buffer[4 : 4 + length]), self.max_blob)
            del self.buffer[: 4 + length]
        sizes: list[int] = self.header["blobs"]
        if len(self.buffer) < sum(sizes):
            return None
        blobs, offset = [], 0
        for size in sizes:
            blobs.append(bytes(self.buffer[offset : offset + size]))
            offset += size
        del self.buffer[:offset]
        header, self.header = self.header, None
        return header, blobs


def _parse_header(data: bytes, max_blob: int) -> dict[str, Any]:
    try:
        header = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"a header that is not JSON ({exc})") from None
    sizes = header.get("blobs") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise ProtocolError("a header that is not an object with a list of blob sizes")
    if sum(sizes) > max_blob:
        raise ProtocolError(f"blobs of {sum(sizes)} bytes exceed {max_blob}")
    checked: dict[str, Any] = header
    return checked


def result_problem(header: dict[str, Any], blobs: list[bytes], max_chars: int) -> str | None:
    """Why a ``result`` frame cannot have come from the worker, or None."""
    limit = 4 * max_chars + _OUTPUT_SLACK  # the engine keeps 4 bytes per character
    for name in ("stdout", "stderr"):
        text = header.get(name, "")
        if not isinstance(text, str) or len(text) > limit:
            size = len(text) if isinstance(text, str) else type(text).__name__
            return f"its {name} ({size} characters) is past the session's limit of {limit}"
    images = header.get("images")
    if not isinstance(images, list) or len(images) != len(blobs) or len(images) > MAX_IMAGES:
        return "its images do not match the attached data or exceed the image limit"
    return None


def compromised_result(why: str, seq: Any) -> dict[str, Any]:
    """The record the relay answers with when it threw the session away."""
    message = (
        f"the session sent {why}: a forged or corrupted record, rejected; every process of "
        "the session was killed and it restarted from its inputs"
    )
    return {
        "op": "result",
        "seq": seq,
        "stdout": "",
        "stderr": "",
        "truncated": [],
        "error": {"type": "SessionCompromised", "message": message, "traceback": ""},
        "images": [],
        "files": [],
        "duration_s": 0.0,
        "timed_out": False,
        "session_died": True,
        "restored": "reset",
    }


def _notice(why: str) -> str:
    return (
        f"the session sent {why}, a forged or corrupted record, rejected; "
        "it was restarted from its inputs"
    )


class Relay:
    """Serves one session: host frames in, checked session frames out."""

    def __init__(
        self,
        host_in: int,
        host_out: int,
        spec: dict[str, Any],
        start: Callable[[], tuple[int, socket.socket]],
        inputs: Sequence[tuple[str, bytes]] = (),
        kill: Callable[[], None] | None = None,
    ) -> None:
        self.host_in, self.host_out, self.spec = host_in, host_out, spec
        self.start = start  # forks a session; returns (pid, channel)
        self.inputs = list(inputs)  # sent to every session init starts, in ``configure``
        self.kill = kill or kill_descendants  # ends the session (a test passes its own)
        self.max_chars = int(spec.get("max_output_chars", 8000))
        self.pending: tuple[str, Any] | None = None  # (op, seq) awaiting its reply
        self.notice: str | None = None  # a compromise to tell with the next record
        self.host_reader = FrameReader()
        self.pid, self.channel = 0, socket.socket()
        self.reader = FrameReader()

    def send_host(self, header: dict[str, Any], blobs: list[bytes] | tuple[()] = ()) -> None:
        head = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode()
        _write_all(self.host_out, _LENGTH.pack(len(head)) + head + b"".join(blobs))

    def launch(self, announce: bool) -> None:
        """Start a session; forward its ``ready`` (or ``failed``) only when ``announce``."""
        self.pid, self.channel = self.start()
        self.reader = FrameReader()
        self.channel.settimeout(_READY_TIMEOUT_S)
        header = self._first_frame()
        if header.get("op") == "spawned":  # init waits for the inputs (``await_configure``)
            names = [name for name, _ in self.inputs]
            with contextlib.suppress(OSError):
                send_message(
                    self.channel,
                    {"op": "configure", "files": names},
                    [data for _, data in self.inputs],
                )
            header = self._first_frame()
        self.channel.settimeout(None)
        if announce or header.get("op") != "ready":
            self.send_host(header)

    def _first_frame(self) -> dict[str, Any]:
        frames: list[Frame] = []
        with contextlib.suppress(OSError, ProtocolError):
            while not frames and (chunk := self.channel.recv(1 << 16)):
                frames = self.reader.feed(chunk)
        if not frames:
            return {"op": "failed", "message": "the session died before it was ready"}
        return frames[0][0]

    def serve(self) -> None:
        """Relay until the host closes its stream; then end every process of the session."""
        while True:
            watched: list[Any] = [self.host_in, self.channel]
            ready = select.select(watched, [], [], 1.0)[0]
            if self.host_in in ready and not self._from_host():
                break
            if self.channel in ready:
                self._from_session()
            _reap()
        self.kill()

    def _from_host(self) -> bool:
        try:
            chunk = os.read(self.host_in, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            return False
        for header, blobs in self.host_reader.feed(chunk):
            op = header.get("op")
            if op in ("run", "restart"):
                self.pending = (str(op), header.get("seq"))
                problem = self._sync()
                if problem is not None:  # this request runs in a fresh session, told so
                    self._restart_session()
                    self.notice = _notice(problem)
            with contextlib.suppress(OSError):
                send_message(self.channel, header, blobs)
            if op == "close":
                return False
        return True

    def _sync(self) -> str | None:
        """Make sure the session is idle before a request: None, or what it sent instead.

        The session answers an unknown op with an ``error`` that names it, after every
        frame it sent before; so a result that arrives after a forged one (or any frame
        nobody asked for) shows up here, before the next request could be paired with it.
        """
        token = f"sync-{os.urandom(8).hex()}"
        try:
            send_message(self.channel, {"op": token})
        except OSError:
            return "nothing: its processes died"
        deadline = time.monotonic() + _SYNC_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.channel], [], [], left)[0]:
                continue
            try:
                chunk = self.channel.recv(1 << 16)
                frames = self.reader.feed(chunk) if chunk else None
            except (OSError, ProtocolError) as exc:
                return f"bytes that are not frames ({exc})"
            if frames is None:
                return "nothing: its processes died"
            if not frames:
                continue
            (header, _), extra = frames[0], frames[1:]
            if header.get("op") != "error" or token not in str(header.get("message")) or extra:
                return f"a {header.get('op')!r} frame nobody asked for"
            return None
        return f"no answer to a check within {_SYNC_TIMEOUT_S:g} s (busy after its result)"

    def _from_session(self) -> None:
        try:
            chunk = self.channel.recv(1 << 16)
            frames = self.reader.feed(chunk) if chunk else None
        except (OSError, ProtocolError) as exc:
            self.compromise(f"bytes that are not frames ({exc})")
            return
        if frames is None:
            self._session_died()
            return
        for header, blobs in frames:
            if not self._accept(header, blobs):
                return

    def _accept(self, header: dict[str, Any], blobs: list[bytes]) -> bool:
        if self.pending is None:
            self.compromise(f"a {header.get('op')!r} frame nobody asked for")
            return False
        _op, seq = self.pending
        if header.get("op") == "result":
            problem = result_problem(header, blobs, self.max_chars)
            if problem is not None:
                self.compromise(f"a result that breaks its limits ({problem})")
                return False
            self._add_notice(header)
        self.pending = None
        if header.get("timed_out") and not header.get("session_died"):
            kill_leftovers(self.pid, self.spec.get("on_error", "keep"))  # before the host hears
        self.send_host({**header, "seq": seq}, blobs)
        return True

    def _add_notice(self, header: dict[str, Any]) -> None:
        if self.notice is not None:
            header["stderr"] = f"[{self.notice}]\n" + str(header.get("stderr", ""))
            header["restored"] = "reset"
            self.notice = None

    def compromise(self, why: str) -> None:
        """Kill the session, start it again, and tell the host in this or the next record."""
        self._restart_session()
        if self.pending is not None and self.pending[0] == "run":
            self.send_host(compromised_result(why, self.pending[1]))
        elif self.pending is not None:
            self.send_host({"op": "ready", "seq": self.pending[1]})
        else:
            self.notice = _notice(why)
        self.pending = None

    def _session_died(self) -> None:
        if self.pending is None:
            self._restart_session()
            self.notice = "the session's processes died; it restarted from its inputs"
            return
        self.compromise("nothing: its processes died")

    def _restart_session(self) -> None:
        self.channel.close()
        self.kill()
        self.launch(announce=False)


# -- processes ---------------------------------------------------------------------------


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_descendants() -> None:
    """SIGKILL every process below this one (a fork bomb may add some while we kill)."""
    for _ in range(50):
        victims = descendants(os.getpid())
        if not victims:
            break
        _kill_all(victims)
        time.sleep(0.01)
        _reap()


def kill_leftovers(init: int, on_error: str) -> None:
    """After a timeout: kill what the code started, sparing the session's init and holder.

    With ``keep`` and ``reset`` the holder is init's newest child (a replaced
    holder's orphans come to init before the new holder is forked) and every
    process below it was started by model code. With ``rollback`` the runs live
    in runners the worker kills itself, and holders nest, so nothing is touched.
    """
    if on_error == "rollback":
        return
    for _ in range(50):
        children = children_map()
        below_init = sorted(children.get(init, []))
        if not below_init:
            return
        victims = descendants(below_init[-1][1], children)
        victims += [pid for _, pid in below_init[:-1]]
        if not victims:
            return
        _kill_all(victims)
        time.sleep(0.01)


def _reap() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
