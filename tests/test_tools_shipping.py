"""Building tool bundles: which sources travel, what is refused, what the sandbox must have."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from codedance.sandboxes.tools import ToolShippingError, bundle_tools
from codedance.sandboxes.worker.toolbox import SourceImporter, install_tools


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``package(name, {file: source})``: write and import-ready a package on the host."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(name: str, files: dict[str, str]) -> str:
        (tmp_path / name).mkdir()
        for file, source in files.items():
            (tmp_path / name / file).write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for module in [m for m in sys.modules if m.split(".")[0] in written]:
        del sys.modules[module]


def _tool(module: str, name: str):
    return getattr(importlib.import_module(module), name)


def test_first_party_imports_travel_and_the_plugin_module_does_not(package):
    name = package(
        "shipme",
        {
            "__init__.py": "from codedance import hookimpl\n",
            "helpers.py": "import json\nfrom . import consts\nK = consts.K\n",
            "consts.py": "K = 3\n",
            "tools.py": "from .helpers import K\nimport numpy\n\ndef f() -> int:\n    return K\n",
        },
    )
    bundle = bundle_tools({"f": _tool(f"{name}.tools", "f")})
    assert sorted(m.name for m in bundle.modules) == [
        "shipme.consts",
        "shipme.helpers",
        "shipme.tools",
    ]
    assert bundle.bind == (("f", "shipme.tools", "f"),)
    assert bundle.requires == {"numpy": "numpy"}


def test_type_checking_imports_of_codedance_are_allowed(package):
    name = package(
        "typed",
        {
            "__init__.py": "",
            "tools.py": """\
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from codedance.core.hookspecs import Register

                def g() -> int:
                    return 1
                """,
        },
    )
    assert bundle_tools({"g": _tool(f"{name}.tools", "g")}).requires == {}


def test_a_tool_module_importing_codedance_is_refused_with_the_fix(package):
    name = package(
        "onefile",
        {
            "__init__.py": "",
            "plugin.py": "from codedance import hookimpl\n\ndef h() -> int:\n    return 1\n",
        },
    )
    with pytest.raises(ToolShippingError, match=r"imports 'codedance'.*docs/tools\.md"):
        bundle_tools({"h": _tool(f"{name}.plugin", "h")})


def test_codedance_tools_helpers_travel_with_third_party_tools(package):
    name = package(
        "reuser",
        {"__init__.py": "", "tools.py": "from codedance.tools._images import to_pil\n"},
    )
    module = importlib.import_module(f"{name}.tools")
    bundle = bundle_tools({"to_pil": module.to_pil})
    assert "codedance.tools._images" in [m.name for m in bundle.modules]


def test_functions_that_are_not_top_level_are_refused():
    def local() -> None:
        pass

    with pytest.raises(ToolShippingError, match=r"tool 'local'.*top-level function"):
        bundle_tools({"local": local})
    with pytest.raises(ToolShippingError, match="tool 'anon'"):
        bundle_tools({"anon": lambda: 1})


def test_bundles_are_cached_per_tool_set():
    from codedance.tools._images import resolve_box, to_pil

    first = bundle_tools({"resolve_box": resolve_box})
    assert bundle_tools({"resolve_box": resolve_box}) is first
    assert bundle_tools({"resolve_box": resolve_box, "to_pil": to_pil}) is not first


def test_wire_form_is_what_the_sandbox_installs(package):
    """The sandbox half, run in this process: sources served, names bound, parents empty."""
    name = package(
        "wired",
        {
            "__init__.py": "RAN = True\n",
            "tools.py": "def w() -> str:\n    return 'w'\n",
        },
    )
    bundle = bundle_tools({"w": _tool(f"{name}.tools", "w")})
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]
    namespace: dict[str, object] = {}
    importer_count = len(sys.meta_path)
    try:
        assert install_tools(bundle.to_wire(), namespace) == []
        assert namespace["w"]() == "w"  # type: ignore[operator]
        assert sys.modules[name].__path__ == []
        assert not hasattr(sys.modules[name], "RAN")  # the plugin's __init__ never ran
    finally:
        del sys.meta_path[: len(sys.meta_path) - importer_count]


def test_importer_synthesizes_parents_only():
    importer = SourceImporter({"a.b.c": {"source": "", "package": False, "origin": "x"}})
    assert importer.parents == {"a", "a.b"}
    assert importer.find_spec("a.b.d") is None
    assert importer.get_source("a.b.c") == ""


def test_a_headless_build_is_named_as_the_sandbox_requirement():
    from codedance.core.tool_modules import _preferred

    assert _preferred(["opencv-python", "opencv-python-headless"]) == "opencv-python-headless"
    assert _preferred(["numpy"]) == "numpy"
