"""Packaging: one `codedance` namespace in the wheel, a working install outside the
checkout, a light base import, and a third-party plugin discovered after pip install."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "codedance-hello-tool"
HEAVY = ["pydantic", "rich", "yaml", "click", "pluggy", "numpy", "torch", "PIL", "cv2"]


def _python(code: str, *, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _codedance(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process; CODEDANCE_* variables come only from ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEDANCE_")}
    return subprocess.run(
        [sys.executable, "-m", "codedance", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        capture_output=True,
    )


def _loaded(code: str, tmp_path: Path) -> set[str]:
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    return set(json.loads(_python(probe, cwd=tmp_path).splitlines()[-1]))


def test_import_codedance_loads_no_dependency(tmp_path):
    assert _loaded("import codedance", tmp_path) == set()


def test_hookimpl_needs_only_pluggy(tmp_path):
    assert _loaded("from codedance import hookimpl", tmp_path) == {"pluggy"}


def test_cli_help_skips_validation_and_rendering_libraries(tmp_path):
    code = (
        "from codedance.core.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit: pass"
    )
    assert _loaded(code, tmp_path) == {"click", "pluggy", "yaml"}


def _package_sources() -> list[str]:
    """Every module of every package folder in the checkout, tests, examples, bench aside."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [
            d
            for d in dirs
            if (Path(folder, d) / "__init__.py").is_file()
            and not (folder == str(ROOT) and d in ("tests", "examples", "bench"))
        ]
        found += [Path(folder, f).relative_to(ROOT).as_posix() for f in files if f.endswith(".py")]
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy: an in-tree build would reuse (and ship) a stale build/."""
    source = tmp_path_factory.mktemp("source") / "codedance"
    skip = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "runs")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*skip))
    out = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(source))
    (path,) = out.glob("codedance-*.whl")
    return path


@pytest.mark.slow
def test_wheel_holds_only_the_codedance_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"codedance", "codedance-0.1.0.dist-info"}
    for required in (
        "registry.yaml",
        "py.typed",
        "testing.py",
        "core/hookspecs.py",
        "sandboxes/__init__.py",
        "plugins/__init__.py",
        "trainers/__init__.py",
        "sandboxes/worker/engine.py",
    ):
        assert f"codedance/{required}" in names
    shipped = {name.removeprefix("codedance/") for name in names if name.endswith(".py")}
    data = {"sandboxes/image/check.py"}  # the sandbox image's self-check (package data)
    assert shipped == (set(_package_sources()) - {"setup.py"}) | data
    assert "codedance/sandboxes/image/Dockerfile" in names
    assert not [n for n in names if n.startswith(("codedance/tests/", "codedance/examples/"))]
    entry_points = zipfile.ZipFile(wheel).read("codedance-0.1.0.dist-info/entry_points.txt")
    assert b"codedance = codedance.core.cli:main" in entry_points
    assert b"[pytest11]\ncodedance = codedance.testing" in entry_points


@pytest.fixture(scope="module")
def wheel_venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout with only the wheel installed as codedance.

    Building the dependencies anew would take minutes, so the venv reads them from
    this interpreter's site-packages through a ``.pth`` line. A ``.pth`` line only adds
    a path: the editable install's own ``.pth`` hook there is never run, so the
    checkout stays invisible (the tests check where codedance is imported from).
    """
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    _pip("--python", str(python), "install", "--no-deps", str(wheel))
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]
    (Path(site.strip()) / "_codedance_test_deps.pth").write_text("\n".join(dict.fromkeys(ours)))
    return venv


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CODEDANCE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }


def _installed(
    venv: Path, *args: str, cwd: Path, on_path: bool = True
) -> subprocess.CompletedProcess[str]:
    """The wheel's ``codedance`` console script, with no trace of the checkout around.

    ``on_path=False`` starts it by its path, as ``make run`` starts ``.venv/bin/codedance``.
    """
    clean = _clean_env()
    path = f"{venv / 'bin'}{os.pathsep}{clean['PATH']}" if on_path else clean["PATH"]
    result = subprocess.run(
        [str(venv / "bin" / "codedance"), *args],
        cwd=cwd,
        env={**clean, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"codedance {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


@pytest.mark.slow
def test_wheel_venv_imports_codedance_from_the_wheel_only(wheel_venv, tmp_path):
    where = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-c", "import codedance; print(codedance.__file__)"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(wheel_venv), where
    shown = _installed(
        wheel_venv, "-o", "runtime.max_turns=6", "config", "show", "--json", cwd=tmp_path
    )
    assert json.loads(shown.stdout)["runtime"]["max_turns"] == 6


@pytest.mark.slow
def test_wheel_exec_runs_code_with_an_image_and_the_tools(wheel_venv, tmp_path):
    """The sandbox worker, the tool bundle and the image preload all ship in the wheel."""
    from PIL import Image

    Image.new("RGB", (40, 30), "red").save(tmp_path / "red.png")
    (tmp_path / "use.py").write_text(
        "print(image.size, len(images), input_image.size)\n"
        "part = crop(image, (0, 0, 20, 10))\nprint(part.size)\ndisplay(part)\n"
    )
    result = _installed(
        wheel_venv, "exec", "--json", "--image", "red.png", "--out", "shown", "use.py", cwd=tmp_path
    )
    record = json.loads(result.stdout)
    assert (record["error"], record["stdout"]) == (None, "(40, 30) 1 (40, 30)\n(20, 10)\n")
    assert len(record["images"]) == 1
    assert list((tmp_path / "shown").glob("*.png"))


@pytest.mark.slow
def test_wheel_runs_the_examples_views_them_and_evaluates(wheel_venv, tmp_path):
    """`codedance run` (the built-in examples), `view` and `eval --benchmark synthetic`."""
    ran = _installed(wheel_venv, "run", "--out", "runs/examples", cwd=tmp_path, on_path=False)
    summary = json.loads((tmp_path / "runs/examples/summary.json").read_text())
    assert summary["accuracy"] == 1.0, summary
    # The next step it prints works from a new shell, where the venv is not on PATH.
    (hint,) = re.findall(r"\(view them: (.+?)\)", ran.stdout)
    assert hint == f"{wheel_venv / 'bin' / 'codedance'} view runs/examples"
    viewed = subprocess.run(
        ["bash", "-c", hint], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True
    )
    assert viewed.returncode == 0, viewed.stderr
    page = (tmp_path / "runs/examples/view.html").read_text()
    assert "<html" in page
    assert "data:image/png;base64," in page
    _installed(
        wheel_venv,
        *("eval", "--benchmark", "synthetic", "--data", "data", "--out", "runs/eval"),
        *("--option", "per_kind=1"),
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "runs/eval/report.json").read_text())
    assert report["categories"]["all"]["accuracy"] == 100.0, report


@pytest.fixture(scope="module")
def hello_site(tmp_path_factory) -> Path:
    """The example third-party plugin, pip-installed into a site folder of its own."""
    source = tmp_path_factory.mktemp("hello-src") / "codedance-hello-tool"
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    shutil.copytree(EXAMPLE, source, ignore=ignore)  # builds leave files beside the source
    target = tmp_path_factory.mktemp("hello-site")
    _pip("install", "--no-deps", "--no-build-isolation", "--target", str(target), str(source))
    return target


def _components(result: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], dict]:
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return {(c["kind"], c["name"]): c for c in report["components"]}


@pytest.mark.slow
def test_installed_example_plugin_is_discovered(hello_site, tmp_path):
    env = {"PYTHONPATH": str(hello_site)}
    found = _components(_codedance("plugins", "--json", cwd=tmp_path, env=env))
    hello = found["tool", "hello"]
    assert (hello["distribution"], hello["version"]) == ("codedance-hello-tool", "0.1.0")
    assert hello["source"] == str(hello_site / "codedance_hello_tool" / "tools.py")


@pytest.mark.slow
def test_installed_example_tools_run_in_the_sandbox(hello_site, tmp_path):
    """Entry point -> enabled tools -> shipped as source into a session that never installed it."""
    script = tmp_path / "use_tools.py"
    script.write_text("print(hello('sandbox'), count_words('a b c'))\n")
    env = {"PYTHONPATH": str(hello_site)}
    result = _codedance("exec", "--json", str(script), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["stdout"], record["error"]) == ("Hello, sandbox! 3\n", None)


@pytest.mark.slow
def test_empty_load_plugins_env_hides_the_example_plugin(hello_site, tmp_path):
    env = {"PYTHONPATH": str(hello_site), "CODEDANCE_LOAD_PLUGINS": ""}
    found = _components(_codedance("plugins", "--json", cwd=tmp_path, env=env))
    assert ("tool", "hello") not in found
    assert ("command", "plugins") in found


@pytest.mark.slow
def test_example_plugin_passes_its_own_tests_with_codedance_testing(hello_site):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        cwd=EXAMPLE,
        env={**os.environ, "PYTHONPATH": str(hello_site)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
