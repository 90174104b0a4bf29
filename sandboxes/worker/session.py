"""The processes of one session: init, the holder chain, and one runner per run.

Inside the session's namespaces, *init* (PID 1) forks a *holder* that owns the
namespace the model sees. Each ``run`` forks a *runner* in a fresh PID namespace
(via a short-lived helper), so a timeout kills the runner's whole process tree
(threads, children, detached grandchildren) and nothing else. When the run
should keep its state, the runner becomes the new holder and the old holder
sleeps underneath it: if the newer state dies, the older one takes over, which is
also what ``on_error: rollback`` needs, at the cost of one fork per run.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

from . import isolation
from .engine import Engine
from .protocol import ProtocolError, recv_message, send_message

EXIT_CLOSED, EXIT_RESET_ANNOUNCE, EXIT_RESET_SILENT = 0, 3, 4


class Holder:
    """Owns the current namespace and serves the host's requests."""

    def __init__(self, host: socket.socket, engine: Engine, spec: dict[str, Any]) -> None:
        self.host, self.engine, self.spec = host, engine, spec
        self.notice: tuple[str, str] | None = None  # (restored, why) for the next record

    def serve(self) -> int:
        isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)  # runners re-parent to us
        while True:
            try:
                message, _ = recv_message(self.host)
            except ProtocolError:
                return EXIT_CLOSED
            op = message.get("op")
            if op == "close":
                return EXIT_CLOSED
            if op == "restart":
                return EXIT_RESET_ANNOUNCE
            if op == "run":
                code = self.run(str(message.get("code", "")), float(message.get("timeout", 15)))
                if code is not None:
                    return code
            else:
                send_message(self.host, {"op": "error", "message": f"unknown op {op!r}"})

    # -- one run -----------------------------------------------------------------

    def run(self, code: str, timeout: float) -> int | None:
        ours, theirs = socket.socketpair()
        pid, own_namespace = self._spawn_runner(theirs, code)
        theirs.close()
        ours.settimeout(timeout)
        started = time.monotonic()
        try:
            header, blobs = recv_message(ours)
        except TimeoutError:
            self._kill(pid, own_namespace)
            header, blobs = self._failure_header(timeout, timed_out=True), []
        except ProtocolError:
            status = self._kill(pid, own_namespace)
            header, blobs = self._failure_header(time.monotonic() - started, status=status), []
        return self._settle(header, blobs, ours, pid, own_namespace)

    def _settle(
        self, header: dict[str, Any], blobs: list[bytes], ours: socket.socket, pid: int, ns: bool
    ) -> int | None:
        failed = header.get("error") is not None or header.get("timed_out")
        policy = self.spec.get("on_error", "keep")
        alive = not header.get("timed_out") and not header.get("crashed")
        if alive and (not failed or policy == "keep"):
            self._send(header, blobs)
            socket.send_fds(ours, [b"commit"], [self.host.fileno()])
            return self._sleep_under(pid)
        self._kill(pid, ns)
        restored = "reset" if policy == "reset" else "rollback"
        self._send({**header, "restored": restored}, blobs)
        return EXIT_RESET_SILENT if restored == "reset" else None

    def _send(self, header: dict[str, Any], blobs: list[bytes]) -> None:
        if self.notice is not None:
            header["restored"], why = self.notice
            header["stderr"] = f"[{why}]\n" + str(header.get("stderr", ""))
            self.notice = None
        header.pop("crashed", None)
        send_message(self.host, {"op": "result", **header}, blobs)

    def _sleep_under(self, pid: int) -> int | None:
        """Wait while the runner, now the holder, serves; resume if it dies."""
        status = _wait(pid)
        code = os.waitstatus_to_exitcode(status)
        if code in (EXIT_CLOSED, EXIT_RESET_ANNOUNCE, EXIT_RESET_SILENT):
            return code
        self.notice = ("rollback", f"the session's newer state was lost (exit {code}); "
                       "it continues from the state before that run")
        return None

    def _failure_header(self, duration: float, timed_out: bool = False, status: int = 0) -> dict[str, Any]:
        if timed_out:
            error = {"type": "TimeoutError", "message": f"the code ran longer than {duration:g} s "
                     "and was killed with all its processes", "traceback": ""}
        else:
            error = {"type": "ProcessDied", "message": _describe_status(status), "traceback": ""}
        return {"stdout": "", "stderr": "", "truncated": [], "error": error, "images": [],
                "files": [], "duration_s": duration, "timed_out": timed_out,
                "crashed": not timed_out}

    # -- the runner ----------------------------------------------------------------

    def _spawn_runner(self, channel: socket.socket, code: str) -> tuple[int, bool]:
        read_end, write_end = os.pipe()
        helper = os.fork()
        if helper == 0:
            os.close(read_end)
            own_namespace = _enter_run_namespace()
            pid = os.fork()
            if pid == 0:
                self._runner(channel, code, own_namespace)
            os.write(write_end, f"{pid} {int(own_namespace)}".encode())
            os._exit(0)
        os.close(write_end)
        _wait(helper)
        pid_text, ns_text = os.read(read_end, 64).decode().split()
        os.close(read_end)
        return int(pid_text), ns_text == "1"

    def _runner(self, channel: socket.socket, code: str, own_namespace: bool) -> None:
        try:
            self.host.close()  # model code must not reach the host channel
            if not own_namespace:
                os.setpgid(0, 0)
            isolation.set_limits(self.spec.get("run_limits", {}))
            header, blobs = self.engine.run(code)
            send_message(channel, header, blobs)
            _, fds, _, _ = socket.recv_fds(channel, 16, 1)
            channel.close()
            if not fds:
                os._exit(EXIT_CLOSED)
            holder = Holder(socket.socket(fileno=fds[0]), self.engine, self.spec)
            os._exit(holder.serve())
        except BaseException:
            os._exit(70)

    @staticmethod
    def _kill(pid: int, own_namespace: bool) -> int:
        try:
            os.kill(pid if own_namespace else -pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return _wait(pid)


def _enter_run_namespace() -> bool:
    """A fresh user+PID namespace for the runner; False when the kernel refuses."""
    try:
        isolation.enter_user_namespace(isolation.CLONE_NEWPID)
    except OSError:
        return False
    return True


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        hint = " (out of memory or a resource limit?)" if name in ("SIGKILL", "SIGXCPU", "SIGXFSZ") else ""
        return f"the process running the code was killed by {name}{hint}; the state before this run was kept"
    return f"the process running the code exited with status {os.waitstatus_to_exitcode(status)}; the state before this run was kept"


def init_main(host: socket.socket, spec: dict[str, Any], isolation_label: str) -> None:
    """PID 1 of the session: start holders, restart them on reset, reap orphans."""
    announce, notice = True, None
    while True:
        pid = os.fork()
        if pid == 0:
            engine = Engine(".", list(spec.get("images", [])), int(spec.get("max_output_chars", 8000)))
            holder = Holder(host, engine, spec)
            holder.notice = notice
            if announce:
                send_message(host, {"op": "ready", "isolation": isolation_label})
            os._exit(holder.serve())
        code = _reap_until(pid)
        if code == EXIT_CLOSED:
            os._exit(0)
        announce = code == EXIT_RESET_ANNOUNCE
        notice = None if code in (EXIT_RESET_ANNOUNCE, EXIT_RESET_SILENT) else (
            "reset", f"the session's process died (exit {code}); it restarted from its inputs")


def _reap_until(pid: int) -> int:
    while True:
        try:
            reaped, status = os.wait()
        except ChildProcessError:
            return EXIT_CLOSED
        if reaped == pid:
            return os.waitstatus_to_exitcode(status)
