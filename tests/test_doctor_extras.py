"""`codedance doctor` checks every package of every extra, and names the torch pair we install."""

from __future__ import annotations

import functools
import re
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from codedance.core.doctor import EXTRAS, TORCH_PIN

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        extra: [re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0] for req in reqs]
        for extra, reqs in project["optional-dependencies"].items()
        if extra not in ("dev", "all")
    }


@functools.cache
def _providers() -> dict[str, set[str]]:
    """Distribution (normalized) -> the import names it provides here."""
    found: dict[str, set[str]] = {}
    for name, dists in packages_distributions().items():
        for dist in dists:
            found.setdefault(dist.lower().replace("_", "-"), set()).add(name)
    return found


def _import_names(distribution: str) -> set[str]:
    """What a distribution lets you import here (its own name, normalized, when absent)."""
    found = _providers().get(distribution.lower().replace("_", "-"))
    return found or {distribution.replace("-", "_")}


def test_every_extra_and_each_of_its_packages_is_checked():
    extras = _extras()
    assert set(EXTRAS) == set(extras)
    for extra, distributions in extras.items():
        for distribution in distributions:
            assert _import_names(distribution) & set(EXTRAS[extra]), (
                f"doctor's EXTRAS[{extra!r}] misses {distribution} (pyproject.toml)"
            )


def test_readme_and_makefile_name_the_torch_pair_doctor_suggests():
    makefile = (ROOT / "Makefile").read_text()
    assert f"install -q --disable-pip-version-check {TORCH_PIN}" in makefile
    assert f"pip install {TORCH_PIN}" in (ROOT / "README.md").read_text()


def test_doctor_warns_when_two_opencv_builds_share_cv2():
    from codedance.core.doctor import _opencv

    versions = {"opencv-python": "5.1.0.95", "opencv-python-headless": "5.1.0.95"}
    (check,) = _opencv(versions.get)
    assert (check.status, check.name) == ("warn", "opencv")
    assert check.fix == (
        "pip uninstall -y opencv-python-headless opencv-python && "
        "pip install --no-deps opencv-python-headless==5.1.0.95"
    )
    (alone,) = _opencv({"opencv-python-headless": "5.1.0.95"}.get)
    assert (alone.status, alone.detail) == ("ok", "opencv-python-headless 5.1.0.95")


def test_makefile_keeps_only_the_headless_opencv_build():
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count("$(headless_cv2)") == 2  # after each editable install
    assert "pip uninstall -q -y opencv-python opencv-python-headless" in makefile
    # setuptools' informational "Editable installation" notice is silenced on each install
    assert 'EDITABLE := PYTHONWARNINGS="ignore:Editable installation"' in makefile
    assert makefile.count("$(EDITABLE) '.[") == 2
