"""Built-in plugin: the ``pixmocount`` benchmark (PixMo-Count test: count a named object).

Reads the Hugging Face release ``allenai/pixmo-count`` exactly as published:
``data/<split>-*.parquet`` with columns ``image_url``, ``image_sha256``, ``count``,
``points`` and ``label`` (the object noun). The val and test splits (540 rows each)
are human-verified counts from 2 to 10. The release holds URLs, not images, so
the images must be downloaded first; each row's image is found, in this order:

1. an ``image`` column with embedded bytes (community copies that embed them);
2. an ``image_path`` column, relative to the parquet file's folder or to --data;
3. a file named ``<image_sha256>`` or ``<image_sha256>.<ext>`` in the images folder
   (option ``images``; default ``<data>/images`` if it exists, else ``<data>``).

Files found by name are checked against ``image_sha256`` (as Molmo's downloader
does), because a URL may now serve a different picture; option
``verify_sha256=false`` skips the check for re-encoded copies. Every missing or
mismatched image is listed in one error, before any task is yielded.

The question is "How many {label} are there in this image?"; scoring is answer
type ``count`` (the same whole number). The category buckets the gold count
(``2-4``, ``5-7``, ``8-10``). Ids are ``pixmocount-<split>-<row>`` (no id field).
Option ``split``: ``test`` (default), ``validation`` or ``train``.

No public repository holds PixMo-Count's real rows (they are on Hugging Face only; see
tests/data/real/pixmocount/SOURCES.md), so this loader is tested on rows
written to the published schema, not on the authors' records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import Any, ClassVar

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.evaluation.benchmark import Benchmark, BenchmarkDataError
from codedance.evaluation.files import (
    data_files,
    find_file,
    iter_parquet_rows,
    place_error,
    write_image,
)
from codedance.plugins.benchmarks.countbench import count_range
from codedance.runtime.types import Task

__all__ = ["PixmoCountBenchmark", "register_benchmarks"]

SPLITS = ("test", "validation", "train")
QUESTION = "How many {label} are there in this image?"
_FIELDS = ("image_sha256", "count", "label")
_SHOWN = 10  # missing images listed by name in the error


class PixmoCountBenchmark(Benchmark):
    """PixMo-Count: how many objects of a named kind are in a web image."""

    name: ClassVar[str] = "pixmocount"
    description: ClassVar[str] = "PixMo-Count test: 540 web images, count the named object (2-10)"
    layout: ClassVar[str] = (
        "  data/test-*.parquet from the Hugging Face dataset allenai/pixmo-count (image_url,\n"
        "  image_sha256, count, points, label), plus the downloaded images saved as\n"
        "  images/<image_sha256>.<ext> (or an image_path column, or embedded image bytes)"
    )
    source: ClassVar[str] = (
        "https://huggingface.co/datasets/allenai/pixmo-count (download each image_url)"
    )
    reported: ClassVar[Mapping[str, float]] = {
        "CodeDance-7B": 77.1,
        "Qwen2.5-VL-7B": 50.4,
        "DeepEyes-7B": 57.2,
    }

    def tasks(self, image_dir: Path) -> Iterator[Task]:
        rows = list(self._rows())
        images = [self._image(row, path, image_dir) for _, path, row in rows]
        if rows and not any(isinstance(image, Path) for image in images):
            self._check_found([row for _, _, row in rows], images)  # nothing to run: say why
        for (index, where, row), image in zip(self._numbered(rows), images, strict=True):
            if isinstance(image, Path):
                yield self._task(row, index, str(image))
            else:
                self.skip(where, self._image_error(row, image))

    def _rows(self) -> Iterator[tuple[str, Path, dict[str, Any]]]:
        """Every row with the published fields (the others are skipped as problems)."""
        for path in self._files():
            for number, row in enumerate(iter_parquet_rows(path, self.name)):
                where = f"{path.name} row {number}"
                checked = self.row_task(where, partial(_checked, row, where))
                if checked is not None:
                    yield where, path, checked

    @staticmethod
    def _numbered(
        rows: list[tuple[str, Path, dict[str, Any]]],
    ) -> Iterator[tuple[int, str, dict[str, Any]]]:
        for index, (where, _, row) in enumerate(rows):
            yield index, where, row

    def _image_error(self, row: dict[str, Any], wrong: str | None) -> BenchmarkDataError:
        """The reason one row's image cannot be used: not found, or not the published one."""
        if wrong is not None:
            return self.missing(f"image {wrong} does not match image_sha256 {row['image_sha256']}")
        return self.missing(
            f"image {row['image_sha256']} ({row.get('image_url')}) not found in "
            f"{str(self.image_folder)!r}"
        )

    @property
    def split(self) -> str:
        return self.choice("split", SPLITS)

    def _files(self) -> list[Path]:
        pattern = f"{self.split}-*.parquet"
        files = data_files(self.data, (pattern, f"data/{pattern}"))
        if not files:
            raise self.missing(f"no {pattern} found")
        return files

    @property
    def image_folder(self) -> Path:
        """Where images named by their sha256 are looked up."""
        if self.options.get("images"):
            return Path(str(self.options["images"]))
        default = self.data if self.data.is_dir() else self.data.parent
        return default / "images" if (default / "images").is_dir() else default

    def _image(self, row: dict[str, Any], path: Path, image_dir: Path) -> Path | str | None:
        """The row's image file; ``None`` if missing, a ``str`` reason if it fails the hash."""
        if row.get("image"):
            written = write_image(
                row["image"], path.parent, image_dir, f"pixmo-{row['image_sha256'][:16]}"
            )
            if written is not None:
                return Path(written)
        if row.get("image_path"):
            found = find_file(str(row["image_path"]), (path.parent, self.data, self.image_folder))
        else:
            found = self._by_sha.get(str(row["image_sha256"]).lower())
        return None if found is None else self._verified(found, row)

    @cached_property
    def _by_sha(self) -> dict[str, Path]:
        """The image folder's files by name up to the first dot (listed once)."""
        folder = self.image_folder
        files = list(folder.iterdir()) if folder.is_dir() else []
        return {p.name.split(".")[0].lower(): p for p in files if p.is_file()}

    def _verified(self, file: Path, row: dict[str, Any]) -> Path | str:
        if str(self.options.get("verify_sha256", True)).lower() in ("false", "0", "no"):
            return file
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        return file if digest == str(row["image_sha256"]).lower() else f"{file} (sha256 {digest})"

    def _check_found(self, rows: list[dict[str, Any]], images: list[Any]) -> None:
        """Raise one error listing every image that is missing or fails its hash."""
        missing = [row for row, image in zip(rows, images, strict=True) if image is None]
        wrong = [image for image in images if isinstance(image, str)]
        if missing:
            listed = "; ".join(
                f"{r['image_sha256']} ({r.get('image_url')})" for r in missing[:_SHOWN]
            )
            more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
            raise self.missing(
                f"{len(missing)} of {len(rows)} images not found in {str(self.image_folder)!r} "
                f"(named <image_sha256>.<ext>): {listed}{more}. Download each image_url and "
                f"save it under its image_sha256, or pass the folder with --option images=<dir>"
            )
        if wrong:
            raise self.missing(
                f"{len(wrong)} image(s) do not match their image_sha256 (the URL now serves "
                f"another picture, or the file was re-encoded): {'; '.join(wrong[:_SHOWN])}. "
                "Fix: download them again, or pass --option verify_sha256=false for "
                "re-encoded copies"
            )

    def _task(self, row: dict[str, Any], index: int, image: str) -> Task:
        count = int(row["count"])
        return Task(
            id=f"pixmocount-{self.split}-{index}",
            question=QUESTION.format(label=row["label"]),
            images=[image],
            answer=str(count),
            answer_type="count",
            metadata={
                "category": count_range(count),
                "label": row["label"],
                "image_url": row.get("image_url"),
                "image_sha256": row["image_sha256"],
            },
        )


def _checked(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict) or any(row.get(name) in (None, "") for name in _FIELDS):
        raise _bad_row(where, f"missing one of the fields {', '.join(_FIELDS)}")
    count = row["count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise _bad_row(where, f"'count' is {count!r}, expected a whole count")
    return row


_bad_row = place_error(
    "pixmocount",
    "Fix: pass the unmodified parquet of https://huggingface.co/datasets/allenai/pixmo-count "
    "with --data.",
)


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(PixmoCountBenchmark)
