"""init: the first process of a session, the only one that talks to the host.

Inside the session's namespaces *init* (PID 1) forks a *holder* (holder.py), the
process whose memory is the namespace the model sees, and relays between the
host and it. Everything that must hold whatever the model's code does lives
here, in a process that code cannot write to, trace or signal (init keeps
root's uid and is not dumpable, the holder runs as the session's own uid with no
capabilities; a PID namespace's init ignores signals from inside it):

- the hard timeout: init knows when each run starts (it forwards the request)
  and kills every process of the session when the time plus a grace is over;
- the CPU limit: init gives the holder a fresh hard = soft ``RLIMIT_CPU`` before
  each run, which the holder itself can only lower;
- the record channel: exactly one ``result`` frame per run, carrying the run's
  random token, is forwarded; any other frame (forged, out of turn, malformed)
  discards the run, kills and restarts the session, and the record says
  ``SessionCompromised``. Wall time over the limit is reported as a timeout
  whatever the record claims (finalizers, swallowed interrupts).

The holder's channel is a socketpair: the host's socket never enters a process
that runs model code.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time
from typing import Any

from . import isolation
from .holder import failure, holder_main
from .procs import descendants
from .protocol import ProtocolError, recv_frame, recv_message, send_message, send_raw

__all__ = ["init_main"]

#: What init keeps: kill the session, start holders as the session's uid, set their limits.
INIT_CAPS = (
    isolation.CAP_KILL,
    isolation.CAP_SETUID,
    isolation.CAP_SETGID,
    isolation.CAP_SYS_RESOURCE,
)
FRAME_S = 5.0  # how long the rest of a frame may take once its first byte arrived
_CONFIG_KEYS = ("env", "images", "tools", "on_error", "max_output_chars")


class StartError(Exception):
    """A holder could not start (an engine error before any model code ran)."""


def init_main(host: socket.socket, spec: dict[str, Any], isolation_label: str) -> None:
    """Serve the session until the host closes it; never returns."""
    try:
        Init(host, spec, isolation_label).main()
    finally:
        os._exit(0)


class Init:
    """Relays host <-> holder, enforces limits, restarts holders, reaps."""

    def __init__(self, host: socket.socket, spec: dict[str, Any], label: str) -> None:
        self.host, self.spec, self.label = host, spec, label
        self.grace = float(spec.get("kill_grace_s", 1.0))
        self.cpu = int(spec.get("cpu_time_s", 60))
        self.cpu_soft = False  # True where init cannot set the holder's hard limit
        self.pid = 0
        self.chan: socket.socket | None = None
        self.config: dict[str, Any] = {k: spec[k] for k in _CONFIG_KEYS if k in spec}
        self.pending: dict[str, Any] | None = None  # the next record, set by an attack
        self.notice: str | None = None  # a note for the next record (holder died idle)
        self.files: tuple[list[str], list[bytes]] = ([], [])  # inputs, rewritten per holder

    def main(self) -> None:
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)  # orphans come to us
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # PID 1: ignore the session's signals
        try:
            self._start_holder()
            if self.spec.get("await_configure"):
                send_message(self.host, {"op": "spawned"})
                self._configure()
                # Answer at once: the holder's engine is built, binding the inputs is
                # quick and overlaps the host's next step; its first request waits in
                # the socket until the holder has confirmed (or a failure is sent).
                self._hand_config(wait=False)
                send_message(self.host, {"op": "ready", "isolation": self.label})
                self._expect("ready")
            else:
                self._hand_config()
                send_message(self.host, {"op": "ready", "isolation": self.label})
        except (StartError, ProtocolError, OSError) as exc:
            with contextlib.suppress(OSError):
                send_message(self.host, {"op": "failed", "message": str(exc)})
            return
        self._serve()

    # -- holders -------------------------------------------------------------------

    def _start_holder(self) -> None:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            holder_main(theirs, self.spec)
        theirs.close()
        ours.settimeout(FRAME_S)  # once: a frame that has begun must end within it
        self.pid, self.chan = pid, ours
        self._expect("built")  # its engine exists: a pooled session is ready but for inputs

    def _hand_config(self, wait: bool = True) -> None:
        """Give the holder its configuration (inputs, tools); by default wait for it."""
        assert self.chan is not None
        names, blobs = self.files
        send_message(self.chan, {"op": "configure", **self.config, "files": names}, blobs)
        if wait:
            self._expect("ready")

    def _expect(self, op: str) -> None:
        """The holder's next message must be ``op``; StartError otherwise."""
        assert self.chan is not None
        self.chan.settimeout(60)
        try:
            header, _ = recv_message(self.chan)
        except (ProtocolError, TimeoutError) as exc:
            raise StartError(f"the session's engine did not start: {exc}") from None
        finally:
            self.chan.settimeout(FRAME_S)
        if header.get("op") != op:
            raise StartError(str(header.get("message", "the session's engine did not start")))

    def _configure(self) -> None:
        """Receive this session's inputs and settings (a pooled session gets them late)."""
        header, blobs = recv_message(self.host)
        if header.get("op") != "configure":
            raise ProtocolError(f"expected configure, got {header.get('op')!r}")
        names = [str(n) for n in header.get("files", [])]
        if len(names) != len(blobs):
            raise ProtocolError("configure: file names do not match the attached data")
        for name in names:
            if "/" in name or name in ("", ".", ".."):
                raise ProtocolError(f"configure: bad file name {name!r}")
        self.files = (names, blobs)
        self.config.update({k: header[k] for k in _CONFIG_KEYS if k in header})
        self.label += str(header.get("label", ""))

    def _restart_holder(self) -> None:
        """Kill every process of the session and start a fresh holder from the inputs."""
        self._kill_everything()
        if self.chan is not None:
            self.chan.close()
        self._start_holder()
        self._hand_config()

    # -- the host's requests -------------------------------------------------------

    def _serve(self) -> None:
        while True:
            message = self._next_request()
            op = None if message is None else message.get("op")
            if op is None or op == "close":
                self._kill_everything()
                return
            try:
                if op == "restart":
                    self._restart_holder()
                    self.pending = self.notice = None
                    send_message(self.host, {"op": "ready", "isolation": self.label})
                elif op == "run":
                    assert message is not None
                    self._run(str(message.get("code", "")), float(message.get("timeout", 15)))
                else:
                    send_message(self.host, {"op": "error", "message": f"unknown op {op!r}"})
            except StartError as exc:
                with contextlib.suppress(OSError):
                    send_message(self.host, {"op": "failed", "message": str(exc)})
                self._kill_everything()
                return

    def _next_request(self) -> dict[str, Any] | None:
        """The host's next message; meanwhile watch the holder (frames, death) and reap."""
        assert self.chan is not None
        while True:
            ready = select.select([self.host, self.chan], [], [], 0.5)[0]
            if self.chan in ready:
                self._frame_between_runs()
            elif self._reap(self.pid):
                self._holder_died_idle()
            if self.host in ready:
                try:
                    message, _ = recv_message(self.host)
                except ProtocolError:
                    return None
                return message

    def _frame_between_runs(self) -> None:
        assert self.chan is not None
        try:
            data = self.chan.recv(1 << 16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # every holder is gone
            self._holder_died_idle()
            return
        self._compromised("wrote on the session's record channel between runs")

    def _holder_died_idle(self) -> None:
        self._restart_holder()
        self.notice = (
            "[a process of the session died between runs (a thread or child of earlier "
            "code, or the memory limit); the session restarted from its inputs]\n"
        )

    def _compromised(self, what: str) -> None:
        self._restart_holder()
        self.pending = {
            **failure(
                f"code in this session {what}: a forged or out-of-turn frame. Nothing it "
                "sent was accepted; every process of the session was killed and the "
                "session restarted from its inputs",
                0.0,
            ),
            "session_died": True,
            "restored": "reset",
        }
        self.pending["error"]["type"] = "SessionCompromised"

    # -- one run -------------------------------------------------------------------

    def _run(self, code: str, timeout: float) -> None:
        assert self.chan is not None
        if self.pending is not None:  # the attack's record, instead of this run
            header, self.pending = self.pending, None
            send_message(self.host, {"op": "result", **header})
            return
        token = os.urandom(12).hex()
        self._limit_cpu()
        request: dict[str, Any] = {"op": "run", "code": code, "timeout": timeout, "token": token}
        if self.cpu_soft:
            request["cpu_soft"] = True
        start = time.monotonic()
        send_message(self.chan, request)
        result, blobs, raw = self._await_result(token, timeout, start)
        if result is None:
            return
        header = result
        elapsed = time.monotonic() - start
        amended = self._amend(header, timeout, elapsed)
        if amended:
            header.pop("blobs", None)
            header.pop("token", None)
            send_message(self.host, header, blobs)
        else:
            send_raw(self.host, raw, blobs)
        if header.get("error") is not None and self.config.get("on_error") == "reset":
            self._restart_holder()

    def _await_result(
        self, token: str, timeout: float, start: float
    ) -> tuple[dict[str, Any] | None, list[bytes], bytes]:
        """The run's record from the holder, or None after reporting why there is none."""
        assert self.chan is not None
        deadline = start + timeout + self.grace
        # The CPU baseline is read at the first tick, not per run (most runs end before
        # it): a run gets its budget plus what it used in its first quarter second.
        cpu_start: float | None = None
        while True:
            wait = max(0.0, min(0.25, deadline - time.monotonic()))
            if select.select([self.chan], [], [], wait)[0]:
                try:  # the channel's FRAME_S timeout bounds a torn frame
                    header, blobs, raw = recv_frame(self.chan)
                except (ProtocolError, OSError) as exc:  # OSError: a torn frame timed out
                    if "closed" in str(exc) or self._reap(self.pid):
                        self._lost("the process running the code exited or was killed")
                    else:  # a torn or oversized frame from a live process
                        self._compromised(f"sent an unreadable frame ({exc})")
                        self._send_pending()
                    return None, [], b""
                if header.get("op") != "result" or header.get("token") != token:
                    self._compromised("sent a frame that is not this run's record")
                    self._send_pending()
                    return None, [], b""
                return header, blobs, raw
            if self._reap(self.pid):
                self._lost("the process running the code exited or was killed")
                return None, [], b""
            if cpu_start is None:
                cpu_start = self._cpu_used()
            elif self._cpu_used() - cpu_start > self.cpu:
                self._kill_everything()
                message = (
                    f"the code used more than its {self.cpu} s of CPU time and was killed "
                    "with every process of the session; the session restarted from its inputs"
                )
                header = failure(message, time.monotonic() - start)
                header["error"]["type"] = "CPUTimeExceeded"
                self._report_lost(header)
                return None, [], b""
            if time.monotonic() >= deadline:
                self._kill_everything()
                message = (
                    f"the code ignored its {timeout:g} s time limit and was killed with "
                    "every process of the session; the session restarted from its inputs"
                )
                self._report_lost(failure(message, timeout, timed_out=True))
                return None, [], b""

    def _amend(self, header: dict[str, Any], timeout: float, elapsed: float) -> bool:
        """Fix what init knows better than the holder; True if the header changed."""
        changed = False
        if elapsed > timeout and not header.get("timed_out"):
            # A finalizer (__del__) or code that swallowed the interrupt used the time.
            header["timed_out"] = True
            if header.get("error") is None:
                header["error"] = {
                    "type": "TimeoutError",
                    "message": f"the run took {elapsed:.2f} s, over its {timeout:g} s limit "
                    "(time spent in finalizers or after a swallowed interrupt counts)",
                    "traceback": "",
                }
            changed = True
        if header.get("error") is not None and self.config.get("on_error") == "reset":
            header["restored"] = "reset"
            changed = True
        if self.notice is not None:
            header["stderr"] = self.notice + str(header.get("stderr", ""))
            header["restored"] = header.get("restored") or "reset"
            self.notice = None
            changed = True
        return changed

    def _lost(self, why: str) -> None:
        self._kill_everything()
        self._report_lost(failure(f"{why}; the session restarted from its inputs", 0.0))

    def _report_lost(self, header: dict[str, Any]) -> None:
        """Restart the holder, then send the record of the run that took it down."""
        if self.chan is not None:
            self.chan.close()
        self._start_holder()
        self._hand_config()
        header.update(session_died=True, restored="reset")
        self.notice = None
        send_message(self.host, {"op": "result", **header})

    def _send_pending(self) -> None:
        header, self.pending = self.pending, None
        if header is not None:
            send_message(self.host, {"op": "result", **header})

    def _cpu_used(self) -> float:
        try:
            return isolation.cpu_seconds(self.pid)
        except (OSError, ValueError, IndexError):
            return 0.0

    def _limit_cpu(self) -> None:
        if self.cpu_soft:
            return
        try:
            isolation.limit_cpu_of(self.pid, self.cpu)
        except OSError:  # no CAP_SYS_RESOURCE here (a container's init): the holder's soft limit
            self.cpu_soft = True

    # -- processes -------------------------------------------------------------------

    def _reap(self, holder: int) -> bool:
        """Reap exited children (orphans re-parent to us); True if ``holder`` was one."""
        found = False
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return found
            if pid == 0:
                return found
            found = found or pid == holder

    def _kill_everything(self) -> None:
        """SIGKILL every other process of the session, then reap them.

        As PID 1 of the session's own PID namespace, ``kill(-1)`` reaches exactly the
        session. Otherwise (no namespaces, or a container's child) ``kill(-1)`` would
        reach every process of this uid on the machine, so we kill our descendants
        instead; as a child subreaper we inherit orphans, so detached ones count too.
        """
        if os.getpid() == 1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
        else:
            for _ in range(100):  # a fork bomb may add children while we kill
                victims = descendants(os.getpid())
                if not victims:
                    break
                for pid in victims:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                self._reap(0)
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
