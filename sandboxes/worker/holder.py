"""The process that owns the model's namespace: runs code, sends one record per run.

The holder talks only to the session's init (see session.py), never to the host,
on a socket that is the only descriptor it keeps. With ``on_error`` keep or reset
it runs code itself (the fast path): a SIGALRM interrupts code at its time limit
like Ctrl-C in a notebook; if the code ignores it, init kills every process of
the session and starts a fresh holder.

With ``on_error: rollback`` each run happens in a *runner* forked into a fresh
PID namespace: a failure or timeout kills the runner's whole process tree and
the holder, untouched, still has the state after the last successful run. A
successful runner becomes the new holder; the old one sleeps underneath it.

Model code shares the holder's process, so it can write on the channel too: init
accepts exactly one ``result`` per run, carrying the run's token, and treats any
other frame as an attack (see session.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from typing import Any

from . import isolation
from .engine import Engine
from .protocol import ProtocolError, recv_message, send_message

__all__ = ["Holder", "failure", "holder_main"]


class Holder:
    """Owns the current namespace and serves init's requests."""

    def __init__(self, channel: socket.socket, engine: Engine, spec: dict[str, Any]) -> None:
        self.channel, self.engine, self.spec = channel, engine, spec
        self.parent: socket.socket | None = None  # channel to the previous holder (runners)
        self.notice: tuple[str, str] | None = None  # (restored, why) for the next record
        self.token = ""

    def serve(self) -> str:
        """Serve runs until init hangs up; tell the previous holder (rollback) we leave."""
        reason = self._serve()
        if self.parent is not None:
            with contextlib.suppress(OSError):
                send_message(self.parent, {"op": "leave", "reason": reason})
        return reason

    def _serve(self) -> str:
        while True:
            try:
                message, _ = recv_message(self.channel)
            except ProtocolError:
                return "close"
            if message.get("op") != "run":
                return str(message.get("op"))
            code, timeout = str(message.get("code", "")), float(message.get("timeout", 15))
            self.token = str(message.get("token", ""))
            if self.spec.get("on_error") == "rollback":
                leave = self.run_forked(code, timeout, bool(message.get("cpu_soft")))
                if leave is not None:
                    return leave
            else:
                if message.get("cpu_soft"):  # init could not set it (no CAP_SYS_RESOURCE)
                    isolation.limit_cpu_soft(int(self.spec.get("cpu_time_s", 60)))
                header, blobs = self.engine.run(code, timeout)
                self._send(header, blobs)

    # -- the rollback path: run in a child that can be thrown away ------------------

    def run_forked(self, code: str, timeout: float, cpu_soft: bool) -> str | None:
        """Run in a runner with its own PID namespace; keep it only if it succeeds."""
        ours, theirs = socket.socketpair()
        pid, own_namespace = self._spawn_runner(theirs, code, ours)
        theirs.close()
        ours.settimeout(timeout)
        started = time.monotonic()
        try:
            header, blobs = recv_message(ours)
            header["token"] = str(header.get("token", ""))  # no token: init rejects it
        except TimeoutError:
            self._kill(pid, own_namespace)
            header, blobs = failure(f"the code ran longer than {timeout:g} s", timeout, True), []
        except ProtocolError:
            status = self._kill(pid, own_namespace)
            header, blobs = failure(_describe_status(status), time.monotonic() - started), []
        if header.get("error") is None and not header.get("timed_out"):
            self._send(header, blobs)
            ours.settimeout(None)
            socket.send_fds(ours, [b"commit"], [self.channel.fileno()])
            return self._sleep_under(pid, ours)
        self._kill(pid, own_namespace)
        ours.close()
        self._send({**header, "restored": "rollback"}, blobs)
        return None

    def _sleep_under(self, pid: int, channel: socket.socket) -> str | None:
        """Wait while the runner, now the holder, serves; take over again if it dies."""
        try:
            message, _ = recv_message(channel)
            reason = message.get("reason")
        except ProtocolError:
            reason = None
        channel.close()
        _wait(pid)
        if reason == "close":
            return "close"
        self.notice = (
            "rollback",
            "the state after a later run was lost (its process died); the session "
            "continues from the state before that run",
        )
        return None

    def _spawn_runner(
        self, channel: socket.socket, code: str, ours: socket.socket
    ) -> tuple[int, bool]:
        read_end, write_end = os.pipe()
        helper = os.fork()
        if helper == 0:
            os.close(read_end)
            ours.close()  # the holder's end: the runner keeps only its own
            own_namespace = _enter_run_namespace()
            pid = os.fork()
            if pid == 0:
                os.close(write_end)
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
            self.channel.close()  # model code must not reach init's channel during its run
            if self.parent is not None:
                self.parent.close()
            if not own_namespace:
                os.setpgid(0, 0)
            # A fresh process: hard = soft CPU limit from zero, never raised again.
            isolation.limit_cpu_from_now(int(self.spec.get("cpu_time_s", 60)))
            self.engine.after_fork()
            header, blobs = self.engine.run(code)
            # The token travels with the frame; the holder forwards it as it came, so a
            # frame the code forged on this channel fails init's check like any other.
            send_message(channel, {**header, "token": self.token}, blobs)
            _, fds, _, _ = socket.recv_fds(channel, 16, 1)
            if not fds:
                os._exit(0)
            holder = Holder(socket.socket(fileno=fds[0]), self.engine, self.spec)
            holder.parent = channel
            holder.serve()
        finally:
            os._exit(0)

    @staticmethod
    def _kill(pid: int, own_namespace: bool) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid if own_namespace else -pid, signal.SIGKILL)
        return _wait(pid)

    # -- records -------------------------------------------------------------------

    def _send(self, header: dict[str, Any], blobs: list[bytes]) -> None:
        if self.notice is not None:
            header["restored"], why = self.notice
            header["stderr"] = f"[{why}]\n" + str(header.get("stderr", ""))
            self.notice = None
        token = header.pop("token", self.token)  # a runner's claim is checked by init
        send_message(self.channel, {**header, "op": "result", "token": token}, blobs)


def failure(message: str, duration: float, timed_out: bool = False) -> dict[str, Any]:
    """A record header for a run that produced nothing (killed, crashed, timed out)."""
    kind = "TimeoutError" if timed_out else "ProcessDied"
    return {
        "stdout": "",
        "stderr": "",
        "truncated": [],
        "error": {"type": kind, "message": message, "traceback": ""},
        "images": [],
        "files": [],
        "duration_s": duration,
        "timed_out": timed_out,
    }


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
    kept = "the state before this run was kept"
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        limited = name in ("SIGKILL", "SIGXCPU", "SIGXFSZ")
        hint = " (out of memory or a resource limit?)" if limited else ""
        return f"the process running the code was killed by {name}{hint}; {kept}"
    return f"the process running the code exited ({os.waitstatus_to_exitcode(status)}); {kept}"


# -- the holder process's start ----------------------------------------------------


def holder_main(channel: socket.socket, spec: dict[str, Any]) -> None:
    """The holder: drop every privilege and inherited descriptor, then serve init.

    Its engine (capture threads and pipes) is built before the inputs arrive, so a
    pooled session spends nothing on it when it is handed out.
    """
    try:
        isolation.close_fds_except((channel.fileno(),))
        _drop_privileges(spec)
        isolation.set_limits(spec.get("session_limits", {}))
        limits = dict(spec.get("holder_limits", {}))
        if "as" in limits:  # memory_mb on top of what the fork already maps (shared pages)
            limits["as"] += _mapped_bytes()
        isolation.set_limits(limits)
        limit = int(spec.get("max_output_chars") or 8000)
        try:
            engine = Engine(".", [], limit)
        except Exception as exc:
            send_message(channel, {"op": "failed", "message": f"{type(exc).__name__}: {exc}"})
            os._exit(0)
        send_message(channel, {"op": "built"})
        message, blobs = recv_message(channel)
        if message.get("op") != "configure":
            os._exit(0)
        _write_inputs([str(n) for n in message.get("files") or []], blobs)
        os.environ.clear()
        os.environ.update(message.get("env") or {})
        images = [str(name) for name in message.get("images") or []]
        tools = message.get("tools")
        if isinstance(tools, str):  # the bundle's JSON text, as the host sent it
            tools = json.loads(tools)
        engine.max_bytes = max(1, int(message.get("max_output_chars") or limit)) * 4
        try:
            engine.add_inputs(images, tools)
        except Exception as exc:
            send_message(channel, {"op": "failed", "message": f"{type(exc).__name__}: {exc}"})
            os._exit(0)
        config = {**spec, "on_error": message.get("on_error", spec.get("on_error"))}
        send_message(channel, {"op": "ready"})
        Holder(channel, engine, config).serve()
    finally:
        os._exit(0)


def _mapped_bytes() -> int:
    """This process's address space now (the zygote's imports, shared with it)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _write_inputs(names: list[str], blobs: list[bytes]) -> None:
    """Write (or restore) the session's input files, as the session's own uid."""
    for name, data in zip(names, blobs, strict=True):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            os.unlink(name)  # whatever the code left there: a symlink, say
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)


def _drop_privileges(spec: dict[str, Any]) -> None:
    """The session's own uid where the host is root; no capabilities in any case."""
    uid = spec.get("uid")
    if uid is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # every capability goes with root's uid
        # setuid made us non-dumpable; rollback's runners write their uid_map in /proc/self.
        isolation.prctl(isolation.PR_SET_DUMPABLE, 1)
    else:
        with contextlib.suppress(OSError):
            isolation.keep_capabilities(())
    isolation.prctl(isolation.PR_SET_NO_NEW_PRIVS, 1)
