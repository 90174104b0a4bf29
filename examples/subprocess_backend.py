"""A sandbox backend in one file: codedance's worker engine in a child process.

Everything the sandbox contract asks (state across runs, output capture and
truncation, images, trimmed tracebacks, soft and hard timeouts, crashes,
``on_error``, tools) is done by the worker that ``WorkerSession`` drives; this
backend writes only the transport: a temporary working directory and a
``python`` child process whose stdin and stdout are one end of a socket pair.

NOT ISOLATED: model code runs as your user and can read your files and reach
the network. It shows how small a backend can be and passes the conformance
suite (``tests/test_backend_example.py``); use the local backend for model code.

Use it as a local plugin file (``plugins: [examples/subprocess_backend.py]`` in
registry.yaml, then ``sandbox.backend: subprocess``) or copy it into a package
with an entry point in the ``codedance`` group.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile

from codedance import hookimpl
from codedance.sandboxes.base import SandboxBackend, SessionSpec
from codedance.sandboxes.engine import WorkerSession, worker_argv, write_inputs


class SubprocessSession(WorkerSession):
    """One session: one child process serving the worker on its stdin and stdout."""

    isolation = "none (subprocess example: your files and the network are reachable)"

    def connect(self) -> socket.socket:
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            worker_argv(),
            stdin=theirs,
            stdout=theirs,
            cwd=self.workdir,
            env=self.env,  # the host's variables (API keys) stay out of the child
            start_new_session=True,  # a Ctrl-C in the terminal does not reach it
        )
        theirs.close()
        return ours

    def disconnect(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class SubprocessSandbox(SandboxBackend):
    """``sandbox.backend: subprocess``; the ``sandbox`` settings arrive as ``self.config``."""

    name = "subprocess"

    def open_session(self, spec: SessionSpec | None = None) -> SubprocessSession:
        spec = spec or SessionSpec()
        workdir = tempfile.mkdtemp(prefix="codedance-subprocess-")
        write_inputs(workdir, spec)
        try:
            return SubprocessSession(self.config, spec, workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise


@hookimpl
def register_sandboxes(register):
    register(SubprocessSandbox)
