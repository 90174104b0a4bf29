"""The ocr tools read text rendered with a real TrueType font back, with its position."""

from __future__ import annotations

import inspect
import sys
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

pytest.importorskip("rapidocr_onnxruntime")

import codedance.plugins.ocr
from codedance.tools import ocr
from codedance.tools.ocr import find_text, read_text, text_in

# Drawn text -> where it is drawn (top-left corner) in a 640 x 360 white image.
LINES = {"INVOICE 2024": (40, 40), "Total: 318.50": (40, 240), "Paid": (480, 240)}
TOLERANCE = 8  # pixels between the drawn glyphs' bounding box and the box read back


@pytest.fixture(scope="module")
def drawn() -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
    """The test image and the exact bounding box of each drawn text."""
    from matplotlib import font_manager

    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 32)
    image = Image.new("RGB", (640, 360), "white")
    draw = ImageDraw.Draw(image)
    boxes = {}
    for text, origin in LINES.items():
        draw.text(origin, text, font=font, fill="black")
        boxes[text] = draw.textbbox(origin, text, font=font)
    return image, boxes


@pytest.fixture(scope="module")
def reading(drawn: tuple[Image.Image, Any]) -> list[dict[str, Any]]:
    """The whole image read once (loading the engine once for the module)."""
    return read_text(drawn[0])


def squash(text: str) -> str:
    return "".join(text.split()).lower()


def near(found: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    return all(abs(a - b) <= TOLERANCE for a, b in zip(found, expected, strict=True))


def test_read_text_finds_every_drawn_text_in_reading_order(reading: list[dict[str, Any]]) -> None:
    assert [squash(item["text"]) for item in reading] == [squash(text) for text in LINES]


def test_read_text_boxes_lie_where_the_text_was_drawn(
    drawn: tuple[Image.Image, dict[str, Any]], reading: list[dict[str, Any]]
) -> None:
    for item, (text, expected) in zip(reading, drawn[1].items(), strict=True):
        assert near(item["box"], expected), (text, item["box"], expected)
        assert 0.5 <= item["confidence"] <= 1.0


def test_read_text_in_a_box_reads_only_that_region_in_full_image_pixels(
    drawn: tuple[Image.Image, dict[str, Any]],
) -> None:
    image, boxes = drawn
    found = read_text(image, box=(20, 220, 300, 290))
    assert [squash(item["text"]) for item in found] == ["total:318.50"]
    assert near(found[0]["box"], boxes["Total: 318.50"])


def test_read_text_accepts_a_relative_box(drawn: tuple[Image.Image, dict[str, Any]]) -> None:
    found = read_text(drawn[0], box=(0.0, 0.0, 1.0, 0.4))
    assert [squash(item["text"]) for item in found] == ["invoice2024"]
    assert near(found[0]["box"], drawn[1]["INVOICE 2024"])


def test_text_in_joins_the_pieces_of_a_line_with_spaces(
    drawn: tuple[Image.Image, dict[str, Any]],
) -> None:
    text = text_in(drawn[0], box=(0, 200, 640, 300))
    assert "\n" not in text
    assert squash(text) == "total:318.50paid"
    assert text.lower().endswith(" paid")


def test_find_text_ignores_case_and_spaces_and_returns_the_line_box(
    drawn: tuple[Image.Image, dict[str, Any]], reading: list[dict[str, Any]]
) -> None:
    found = find_text(drawn[0], "invoice 2024", box=(0, 0, 640, 120))
    assert len(found) == 1
    assert near(found[0]["box"], drawn[1]["INVOICE 2024"])
    assert find_text(drawn[0], "receipt", box=(0, 0, 640, 120)) == []


def test_blank_image_has_no_text() -> None:
    blank = np.full((120, 200, 3), 255, dtype=np.uint8)
    assert read_text(blank) == []
    assert text_in(blank) == ""


def test_engine_receives_bgr_as_rapidocr_expects(monkeypatch: pytest.MonkeyPatch) -> None:
    """RapidOCR reads arrays as OpenCV BGR; our RGB red must arrive as (0, 0, 255)."""
    seen = []

    def engine(array: np.ndarray, **options: Any) -> tuple[None, None]:
        seen.append(array[array.shape[0] // 2, array.shape[1] // 2].tolist())
        return None, None

    monkeypatch.setattr(ocr, "_engine_instance", engine)
    red = np.zeros((40, 40, 3), dtype=np.uint8)
    red[..., 0] = 255
    assert read_text(red) == []
    assert seen == [[0, 0, 255]]


def test_bad_arguments_are_value_errors_naming_the_value() -> None:
    blank = np.full((40, 40, 3), 255, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"min_confidence .* got 1\.5"):
        read_text(blank, min_confidence=1.5)
    with pytest.raises(ValueError, match="query ' '"):
        find_text(blank, " ")
    with pytest.raises(ValueError, match="empty inside the 40x40 image"):
        read_text(blank, box=(50, 50, 60, 60))


def test_missing_engine_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A None entry in sys.modules simulates the optional package being absent."""
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'codedance\[ocr\]'"):
        read_text(np.zeros((10, 10, 3), dtype=np.uint8))


def test_plugin_registers_the_ocr_tools(codedance_registry: Any) -> None:
    """The built-in plugin registers every public function of the tool module, and no more."""
    module, plugin = ocr, codedance.plugins.ocr.__name__
    public = [getattr(module, name) for name in module.__all__]
    functions = {f.__name__: f for f in public if inspect.isfunction(f)}
    mine = [e for e in codedance_registry.entries("tool") if e.plugin.name == plugin]
    assert {e.name: e.obj for e in mine} == functions
    assert {e.plugin.origin for e in mine} == {"builtin"}
    assert codedance_registry.get("tool", "read_text") is read_text
    assert codedance_registry.get("tool", "text_in") is text_in
    assert codedance_registry.get("tool", "find_text") is find_text


@pytest.mark.slow
def test_ocr_in_a_session_leaves_no_runtime_files_in_the_working_directory(tmp_path) -> None:
    """onnxruntime's telemetry cache (deviceid, onnxruntime.db*) is not an output file."""
    import json
    import os
    import subprocess

    Image.new("RGB", (60, 40), "white").save(tmp_path / "w.png")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEDANCE_")}
    result = subprocess.run(
        [sys.executable, "-m", "codedance", "exec", "--json", "--image", "w.png", "-"],
        input="print(read_text(input_image))",
        cwd=tmp_path,
        env={**clean, "CODEDANCE_LOAD_PLUGINS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    record = json.loads(result.stdout)
    assert (record["error"], record["stdout"]) == (None, "[]\n")
    assert record["files"] == []
