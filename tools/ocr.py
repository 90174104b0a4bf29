"""Reading the text in an image (OCR) with RapidOCR's ONNX models, offline on the CPU.

rapidocr-onnxruntime is optional (the ``ocr`` extra; its wheel ships the models).
It is imported the first time a tool here runs, so importing this module stays
cheap, and its absence is a ``ModuleNotFoundError`` that says how to install it.
The engine is built once per process and reused.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from typing import Any

import numpy as np

from ._images import Box, Coords, ImageLike, resolve_box, to_rgb_array

__all__ = ["find_text", "read_text", "text_in"]

_INSTALL_HINT = (
    "OCR needs rapidocr-onnxruntime: pip install 'codedance[ocr]' (or add it to the sandbox image)"
)
# Background added around the image: text touching the border is found more reliably,
# and a very wide or tall region is not upscaled wholesale by the detector (it scales
# the shorter side up to 736 px), which is slow and splits lines into pieces.
_MARGIN = 8
_MAX_ASPECT = 2.0

_engine_instance: Any = None


def read_text(
    image: ImageLike,
    box: Box | None = None,
    coords: Coords = "auto",
    min_confidence: float = 0.5,
) -> list[dict[str, Any]]:
    """Read the text in ``image`` (only inside ``box`` if given) as a list of
    ``{"text", "box", "confidence"}`` dicts in reading order (top to bottom, left to
    right); each ``box`` is ``(x0, y0, x1, y1)`` in pixels of the full image.

    One dict per detected line or text run; the engine may drop the spaces between
    words. ``box`` restricts reading to a region (pixels, or [0, 1] fractions with
    ``coords``), which is faster and avoids text elsewhere; the returned boxes are
    still full-image pixels. Results whose confidence (0 to 1) is below
    ``min_confidence`` are left out; lower it to see uncertain readings.
    """
    rgb = to_rgb_array(image)
    height, width = rgb.shape[:2]
    left, top, right, bottom = 0, 0, width, height
    if box is not None:
        left, top, right, bottom = resolve_box(box, width, height, coords)
    items = _recognise(rgb[top:bottom, left:right], _check_confidence(min_confidence))
    for item in items:
        x0, y0, x1, y1 = item["box"]
        item["box"] = (
            left + max(0, x0),
            top + max(0, y0),
            left + min(right - left, x1),
            top + min(bottom - top, y1),
        )
    return [item for line in _lines(items) for item in line]


def text_in(
    image: ImageLike,
    box: Box | None = None,
    coords: Coords = "auto",
    min_confidence: float = 0.5,
) -> str:
    """The text in ``image`` (only inside ``box`` if given) as one string: lines top to
    bottom joined by newlines, the pieces of a line left to right joined by spaces.

    A shortcut for ``read_text`` when positions do not matter; ``""`` when no text
    is found. ``box`` and ``coords`` follow the shared box convention.
    """
    items = read_text(image, box, coords, min_confidence)
    return "\n".join(" ".join(item["text"] for item in line) for line in _lines(items))


def find_text(
    image: ImageLike,
    query: str,
    box: Box | None = None,
    coords: Coords = "auto",
    min_confidence: float = 0.5,
) -> list[dict[str, Any]]:
    """Where ``query`` appears in ``image``: the ``read_text`` dicts whose text contains
    it, ignoring case and spaces, with boxes ``(x0, y0, x1, y1)`` in full-image pixels.

    A box covers the whole line or text run that contains the query, not only the
    matching characters. An empty list means it was not read anywhere; try a
    shorter query, a ``box`` around where it should be, or a lower ``min_confidence``.
    """
    needle = _squash(query)
    if not needle:
        raise ValueError(f"query {query!r} has no characters to search for; pass some text")
    return [
        item
        for item in read_text(image, box, coords, min_confidence)
        if needle in _squash(item["text"])
    ]


def _engine() -> Any:
    """The shared RapidOCR engine, built on first use (loading its models takes ~0.5 s)."""
    global _engine_instance
    try:
        # Imported on each call (a dict lookup once loaded) so that an uninstalled
        # package is reported even after another session built the engine.
        rapidocr = _import_quietly("rapidocr_onnxruntime")
    except ImportError as error:
        raise ModuleNotFoundError(_INSTALL_HINT, name="rapidocr_onnxruntime") from error
    if _engine_instance is None:
        _engine_instance = rapidocr.RapidOCR(**_thread_options())
    return _engine_instance


def _thread_options() -> dict[str, int]:
    """onnxruntime's thread pools sized by ``OMP_NUM_THREADS`` (codedance's sandboxes set it).

    onnxruntime ignores that variable and would start a spinning thread per core in
    every session: on a small machine running many sessions, the OCR calls then
    starve each other past their time limit.
    """
    try:
        threads = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return {}
    return {"intra_op_num_threads": threads, "inter_op_num_threads": 1} if threads > 0 else {}


def _import_quietly(name: str) -> Any:
    """Import ``name`` with onnxruntime's telemetry cache outside the working directory.

    Importing onnxruntime writes ``Microsoft/DeveloperTools/.onnxruntime/deviceid`` and
    ``onnxruntime.db*`` under ``$XDG_CACHE_HOME`` (default ``$HOME/.cache``); in a
    sandbox HOME is the working directory, so they showed up as output files of every
    OCR call. The variable is set only while importing.
    """
    if "onnxruntime" in sys.modules:
        return importlib.import_module(name)
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = os.path.join(tempfile.gettempdir(), "codedance-ocr-cache")
    try:
        return importlib.import_module(name)
    finally:
        if previous is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = previous


def _recognise(region: np.ndarray, min_confidence: float) -> list[dict[str, Any]]:
    """Run the engine on an RGB ``region``; boxes in the region's pixels (unclamped)."""
    engine = _engine()
    padded, pad_top, pad_left = _pad(region)
    # RapidOCR reads numpy arrays as OpenCV BGR, unlike our RGB convention.
    bgr = np.ascontiguousarray(padded[..., ::-1])
    results, _ = engine(bgr, text_score=min_confidence)
    items = []
    for quad, text, score in results or []:
        corners = np.asarray(quad, dtype=float) - (pad_left, pad_top)
        x0, y0 = np.floor(corners.min(axis=0)).astype(int)
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
        box = (int(x0), int(y0), int(x1), int(y1))
        items.append({"text": str(text), "box": box, "confidence": round(float(score), 4)})
    return items


def _pad(region: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``region`` framed in its border colour, at most ``_MAX_ASPECT`` times wider than tall
    (or taller than wide); also returns the added top and left widths."""
    height, width = region.shape[:2]
    pad_y = max(_MARGIN, int(np.ceil((width / _MAX_ASPECT - height) / 2)))
    pad_x = max(_MARGIN, int(np.ceil((height / _MAX_ASPECT - width) / 2)))
    border = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]])
    background = np.median(border, axis=0).astype(np.uint8)
    padded = np.empty((height + 2 * pad_y, width + 2 * pad_x, 3), dtype=np.uint8)
    padded[...] = background
    padded[pad_y : pad_y + height, pad_x : pad_x + width] = region
    return padded, pad_y, pad_x


def _lines(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``items`` grouped into lines (vertical centre inside the line's first box), each
    line sorted left to right, lines sorted top to bottom."""
    lines: list[list[dict[str, Any]]] = []
    for item in sorted(items, key=lambda it: it["box"][1] + it["box"][3]):
        centre = (item["box"][1] + item["box"][3]) / 2
        if lines and lines[-1][0]["box"][1] <= centre <= lines[-1][0]["box"][3]:
            lines[-1].append(item)
        else:
            lines.append([item])
    return [sorted(line, key=lambda it: it["box"][0]) for line in lines]


def _check_confidence(min_confidence: float) -> float:
    value = float(min_confidence)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"min_confidence is a fraction in [0, 1], got {min_confidence!r}")
    return value


def _squash(text: str) -> str:
    return "".join(text.split()).casefold()
