"""Execute model code in a persistent namespace and capture what it produced.

Captured: stdout and stderr at the file-descriptor level (so C extensions and
child processes are caught too, and capped without blocking the writer), the
exception with a traceback trimmed to the model's code, images from
``display()``, ``plt.show()``, figures left open, ``Image.show()``,
``cv2.imshow()`` and a trailing expression, and the files the run touched.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import fcntl
import functools
import linecache
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from .toolbox import install_tools, load_bundle

__all__ = ["Engine"]

CELL = "<cell>"
MAX_IMAGES = 16
MAX_PIXELS = 4096 * 4096
MAX_LISTED_FILES = 2000
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # pixels per run; the host refuses more than 256 MB


class ExecutionTimeout(BaseException):
    """Raised inside model code when its time is up (a BaseException, like KeyboardInterrupt)."""


_ALARM = {"fired": False}


def _alarm(signum: int, frame: Any) -> None:
    # Remember it, and fire again soon: code (a __del__, a bare except) may swallow it.
    _ALARM["fired"] = True
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    raise ExecutionTimeout


class _Capture:
    """Keep ``fd`` pointed at a pipe drained by one long-lived thread.

    A run's output is everything between :meth:`begin` and a random end marker
    that :meth:`end` writes into the pipe itself, so nothing the code wrote is
    lost or misattributed, whatever buffering it used, and no thread or pipe is
    created per run. Output past ``limit`` bytes is counted and dropped, and a
    writer never blocks on a full pipe.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.cond = threading.Condition()
        self.kept, self.dropped, self.limit = bytearray(), 0, 0
        self.marker: bytes | None = None
        self.found = False
        self._install()

    def _install(self) -> None:
        read_end, write_end = (_high(fd) for fd in os.pipe())  # fd 1 may be free right now
        os.dup2(write_end, self.fd)
        os.close(write_end)
        self.inode = os.fstat(self.fd).st_ino
        threading.Thread(target=self._drain, args=(read_end,), daemon=True).start()

    def begin(self, limit: int) -> None:
        if _inode(self.fd) != self.inode:  # the code closed or replaced the stream
            self._install()
        with self.cond:
            self.kept, self.dropped, self.limit = bytearray(), 0, limit
            self.marker, self.found = None, False

    def end(self) -> tuple[bytes, int]:
        marker = b"\x00codedance-end-" + os.urandom(8).hex().encode() + b"\x00"
        with self.cond:
            self.marker = marker
        with contextlib.suppress(OSError):
            os.write(self.fd, marker)
        with self.cond:
            self.cond.wait_for(lambda: self.found, timeout=0.5)
            self.marker, self.limit = None, 0
            return bytes(self.kept), self.dropped

    def _drain(self, fd: int) -> None:
        try:
            self._drain_until_eof(fd)
        finally:
            os.close(fd)

    def _drain_until_eof(self, fd: int) -> None:
        tail = b""
        while chunk := _read(fd):
            with self.cond:
                data = tail + chunk
                marker = self.marker
                if marker is not None and marker in data:
                    self._keep(data[: data.index(marker)])
                    self.found, tail = True, b""
                    self.cond.notify_all()
                    continue
                keep_back = len(marker) - 1 if marker else 0
                self._keep(data[: len(data) - keep_back] if keep_back else data)
                tail = data[len(data) - keep_back :] if keep_back else b""

    def _keep(self, data: bytes) -> None:
        room = max(0, self.limit - len(self.kept))
        self.kept += data[:room]
        self.dropped += max(0, len(data) - room) if self.limit else 0


def _high(fd: int) -> int:
    """Move ``fd`` above the standard streams so dup2 onto 1 or 2 cannot clobber it."""
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def _inode(fd: int) -> int:
    try:
        return os.fstat(fd).st_ino
    except OSError:
        return -1


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


class Engine:
    """A namespace plus the capture machinery; ``run`` executes one cell."""

    def __init__(
        self,
        workdir: str,
        image_files: list[str],
        max_output_chars: int,
        tools: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir
        self.max_bytes = max(1, max_output_chars) * 4
        self.images: list[dict[str, Any]] = []
        self.blobs: list[bytes] = []
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.namespace["display"] = self.display
        self._notes: list[str] = []  # problems with the inputs, told in the first run
        self._preload(image_files)
        bundle = load_bundle(tools)
        if bundle:
            self._notes += install_tools(bundle, self.namespace)
        self._patch_viewers()
        self._streams = (_Capture(1), _Capture(2))
        for stream in (sys.stdout, sys.stderr):  # keep print order with child processes
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        self._cell = 0
        self._timed_out = False

    # -- the namespace the model sees ------------------------------------------------

    def add_inputs(self, image_files: list[str], tools: dict[str, Any] | None = None) -> None:
        """Bind inputs and tools to an engine built before they were known.

        The local backend's pooled sessions build their engine (capture threads and
        pipes) ahead of time and receive their inputs when a session is opened.
        """
        self._preload(image_files)
        bundle = load_bundle(tools)
        if bundle:
            self._notes += install_tools(bundle, self.namespace)
        self._patch_viewers()

    def _preload(self, image_files: list[str]) -> None:
        ns = self.namespace
        if "matplotlib.pyplot" in sys.modules:
            ns["plt"] = sys.modules["matplotlib.pyplot"]
        opened = [self._open_image(name) for name in image_files]
        ns["images"] = [image for image in opened if image is not None]
        ns["image"] = ns["images"][0] if ns["images"] else None
        for name, image in zip(image_files, opened, strict=False):
            stem = os.path.splitext(name)[0]
            if image is not None and stem.isidentifier():
                ns[stem] = image
                ns[f"{stem}_path"] = name

    def _open_image(self, name: str) -> Any:
        """The image as PIL opens it, or None with a note the first run's stderr shows."""
        try:
            from PIL import Image
        except ImportError:
            self._notes.append(f"input image {name!r} is not preloaded: Pillow is not installed")
            return None
        try:
            return Image.open(os.path.join(self.workdir, name))  # decoded lazily
        except Exception as exc:
            self._notes.append(
                f"input image {name!r} could not be opened ({type(exc).__name__}: {exc}); "
                f"it is left out of `images`, the file is still in the working directory"
            )
            return None

    def _patch_viewers(self) -> None:
        capture = self._capture
        if "matplotlib.pyplot" in sys.modules:
            plt = sys.modules["matplotlib.pyplot"]

            def show(*args: Any, **kwargs: Any) -> None:
                self._capture_figures("show")

            setattr(plt, "show", show)  # noqa: B010 - a module attribute, patched on purpose
        if "PIL.Image" in sys.modules:
            image_class = sys.modules["PIL.Image"].Image
            image_class.show = lambda img, *a, **k: capture(img, "show")
        if "cv2" in sys.modules:
            cv2: Any = sys.modules["cv2"]
            cv2.imshow = lambda _title, array: capture(array, "show")
            cv2.waitKey = lambda *a, **k: -1

    def after_fork(self) -> None:
        """Call in a forked child: threads do not survive fork, so recreate the capture."""
        self._streams = (_Capture(1), _Capture(2))

    def display(self, *objects: Any) -> None:
        """Show objects to the model: images and figures as images, the rest as text."""
        for obj in objects:
            if not self._capture(obj, "display"):
                print(repr(obj))

    # -- running a cell ----------------------------------------------------------------

    def run(self, code: str, timeout: float | None = None) -> tuple[dict[str, Any], list[bytes]]:
        """Execute ``code``; return the record header and the image blobs.

        With ``timeout``, SIGALRM interrupts the code like Ctrl-C in a notebook, so
        the state survives; code that blocks the signal is killed by the session's
        init instead (see session.py).
        """
        self.images, self.blobs = [], []
        self._patch_viewers()  # modules the code imported since the last run
        before = self._files()
        for stream in self._streams:
            stream.begin(self.max_bytes)
        start = time.perf_counter()
        _ALARM["fired"] = False
        if timeout is not None:
            signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, timeout)
        owner = os.getpid()
        try:
            error = self._execute(code)
        except ExecutionTimeout:  # raised between the code's end and disarming
            error = None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if os.getpid() != owner:  # a child the code forked finished the cell: it must
            os._exit(0)  # not go on to act as the session
        timed_out, self._timed_out = self._timed_out or _ALARM["fired"], False
        if timed_out and error is None:  # the interrupt was swallowed (say, in a __del__)
            error = {
                "type": "TimeoutError",
                "message": "the time limit was reached (the interrupt was swallowed, for "
                "example in a finalizer); the session keeps the state it had reached",
                "traceback": "",
            }
        render_error = self._capture_figures_safely()
        if error is None:
            error = render_error
        error = _capped_error(error, self.max_bytes)
        duration = time.perf_counter() - start
        for python_stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                python_stream.flush()
        stdout, stderr = (self._finish(stream) for stream in self._streams)
        if self._notes:
            stderr = ("".join(f"[{note}]\n" for note in self._notes) + stderr[0], stderr[1])
            self._notes = []
        header = {
            "stdout": stdout[0],
            "stderr": stderr[0],
            "truncated": [n for n, (_, cut) in (("stdout", stdout), ("stderr", stderr)) if cut],
            "error": error,
            "images": self.images,
            "files": self._changed(before, self._files()),
            "duration_s": duration,
            "timed_out": timed_out,
        }
        return header, self.blobs

    def _execute(self, code: str) -> dict[str, str] | None:
        self._cell += 1
        filename = f"{CELL}-{self._cell}"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        try:
            body, last = _split_last_expression(code)
            if body is not None:
                exec(compile(body, filename, "exec"), self.namespace)
            if last is not None:
                value = eval(compile(last, filename, "eval"), self.namespace)
                self._show_result(value)
        except ExecutionTimeout:
            signal.setitimer(signal.ITIMER_REAL, 0)  # no second interrupt in our own code
            self._timed_out = True
            return {
                "type": "TimeoutError",
                "message": "the code was interrupted at its time limit; the session keeps "
                "the state it had reached",
                "traceback": "",
            }
        except SystemExit as exc:
            code_text = _safe_text(functools.partial(repr, exc.code), "<unprintable>")
            return {
                "type": "SystemExit",
                "message": f"exit({code_text}) was called; the session keeps its state",
                "traceback": "",
            }
        except BaseException as exc:  # the model's failure is data, not ours
            return _error_info(exc)
        return None

    def _show_result(self, value: Any) -> None:
        if value is None or self._capture(value, "last_expression"):
            return
        print(repr(value))

    @staticmethod
    def _finish(stream: _Capture) -> tuple[str, bool]:
        kept, dropped = stream.end()
        text = kept.decode("utf-8", errors="replace")
        if dropped:
            text += f"\n[output truncated: {dropped} more bytes were cut]"
        return text, bool(dropped)

    # -- images --------------------------------------------------------------------

    def _capture(self, obj: Any, source: str) -> bool:
        pixels = _to_pixels(obj)
        if pixels is None:
            return False
        if len(self.images) >= MAX_IMAGES:
            print(f"[image not shown: at most {MAX_IMAGES} images per run]", file=sys.stderr)
            return True
        mode, width, height, data = pixels
        if sum(map(len, self.blobs)) + len(data) > MAX_IMAGE_BYTES:
            print(
                f"[image not shown: at most {MAX_IMAGE_BYTES >> 20} MB of pixels per run]",
                file=sys.stderr,
            )
            return True
        self.images.append({"mode": mode, "width": width, "height": height, "source": source})
        self.blobs.append(data)
        return True

    def _capture_figures_safely(self) -> dict[str, str] | None:
        """Figures left open, as images; a figure that fails to render is an error, not a crash."""
        try:
            self._capture_figures("figure")
        except BaseException as exc:  # model-built figures may fail in any way
            plt = sys.modules.get("matplotlib.pyplot")
            with contextlib.suppress(BaseException):
                if plt is not None:
                    plt.close("all")
            info = _error_info(exc)
            info["message"] = f"a figure left open could not be rendered: {info['message']}"
            return info
        return None

    def _capture_figures(self, source: str) -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        for number in plt.get_fignums():
            figure = plt.figure(number)
            self._capture(figure, source)
            plt.close(figure)

    # -- files ---------------------------------------------------------------------

    def _files(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        stack = [self.workdir]
        while stack and len(found) < MAX_LISTED_FILES:
            try:
                entries = list(os.scandir(stack.pop()))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        rel = os.path.relpath(entry.path, self.workdir)
                        found[rel] = (info.st_mtime_ns, info.st_size)
                except OSError:
                    continue
        return found

    @staticmethod
    def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        return sorted(path for path, stamp in after.items() if before.get(path) != stamp)


def _split_last_expression(code: str) -> tuple[ast.Module | None, ast.Expression | None]:
    tree = ast.parse(code, filename=CELL)
    final = tree.body[-1] if tree.body else None
    if isinstance(final, ast.Expr):
        tree.body.pop()
        return (tree if tree.body else None), ast.Expression(final.value)
    return tree, None


def _error_info(exc: BaseException) -> dict[str, str]:
    """Type, message and trimmed traceback; an exception whose __str__ raises still reports."""
    kind = _safe_text(lambda: type(exc).__name__, "<exception>")
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(CELL):
        tb = tb.tb_next
    message = _safe_text(lambda: str(exc), f"<{kind}: its message could not be rendered>")

    def lines() -> str:
        if isinstance(exc, SyntaxError):
            return "".join(traceback.format_exception_only(type(exc), exc))
        return "".join(traceback.format_exception(type(exc), exc, tb))

    return {"type": kind, "message": message, "traceback": _safe_text(lines, "")}


def _safe_text(render: Any, fallback: str) -> str:
    try:
        text = render()
        return text if isinstance(text, str) else fallback
    except BaseException:  # a raising __str__ / __repr__ is the model's; never ours
        return fallback


def _capped_error(error: dict[str, str] | None, limit: int) -> dict[str, str] | None:
    """Cut the error's message and traceback like stdout (the host caps them again)."""
    if error is None:
        return None
    capped = dict(error)
    for key in ("message", "traceback"):
        text = str(capped.get(key, ""))
        if len(text) > limit:
            capped[key] = (
                text[:limit] + f"\n[{key} truncated: {len(text) - limit} more characters were cut]"
            )
    capped["type"] = str(capped.get("type", ""))[:200]
    return capped


def _to_pixels(obj: Any) -> tuple[str, int, int, bytes] | None:
    """Raw pixels of a PIL image, matplotlib figure or numpy array; None otherwise."""
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(obj, pil.Image):
        return _pil_pixels(obj)
    figure = sys.modules.get("matplotlib.figure")
    if figure is not None and isinstance(obj, figure.Figure):
        obj.canvas.draw()
        width, height = obj.canvas.get_width_height(physical=True)
        return "RGBA", width, height, bytes(obj.canvas.buffer_rgba())
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(obj, numpy.ndarray) and pil is not None:
        return _array_pixels(obj, numpy, pil)
    return None


def _pil_pixels(image: Any) -> tuple[str, int, int, bytes]:
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    if image.width * image.height > MAX_PIXELS:
        image = image.copy()
        image.thumbnail((4096, 4096))
    return image.mode, image.width, image.height, image.tobytes()


def _array_pixels(array: Any, numpy: Any, pil: Any) -> tuple[str, int, int, bytes] | None:
    if array.ndim not in (2, 3) or array.size == 0 or min(array.shape[:2]) < 1:
        return None
    if array.ndim == 3 and array.shape[2] not in (3, 4):
        return None
    if array.dtype != numpy.uint8:
        scale = 255.0 if array.dtype.kind == "f" and float(array.max(initial=0)) <= 1.0 else 1.0
        array = numpy.clip(array * scale, 0, 255).astype(numpy.uint8)
    if array.ndim == 3:  # OpenCV's channel order, as CodeDance's sandbox assumes
        array = array[..., [2, 1, 0, 3][: array.shape[2]]]
    return _pil_pixels(pil.fromarray(numpy.ascontiguousarray(array)))
