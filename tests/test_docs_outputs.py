"""Every quoted command output in docs/configuration.md and docs/plugins.md is real.

A ```text block of ``$ codedance ...`` lines is run command by command, in a folder
holding the files the page shows (```yaml blocks headed ``# name.yaml``) and the
inputs it describes in words (``INPUTS``); each command's output must match the
lines under it (``...`` stands for any lines). On a mismatch the message shows
the real output to paste. Plugin problem messages quoted in plugins.md are produced
from the plugins in ``BROKEN_PLUGINS`` the same way.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"

#: Inputs docs/configuration.md describes in words rather than showing.
INPUTS = {
    "top2.yaml": "sandboxes:\n  backend: local\n",
    "syntax.yaml": "plugins: [a, b\n",
    "env.yaml": "model:\n  endpoint: ${MY_ENDPOINT}\n",
    "list.yaml": "- sandbox\n- model\n",
    "top.yaml": "sandbox:\n  backend: local\nplugins: ./my_plugin.py\n",
    "badreward.yaml": "rewards:\n  - name: bat\n    params:\n      gamma: steep\n",
    "runs/none.jsonl": "",
}


def _blocks(page: str, language: str) -> list[str]:
    return re.findall(rf"^ *```{language}\n(.*?)^ *```", page, flags=re.DOTALL | re.MULTILINE)


def _sessions(page: str) -> list[tuple[str, list[str]]]:
    """``(command, expected lines)`` for every ``$ codedance`` line of the page's text blocks."""
    found: list[tuple[str, list[str]]] = []
    for block in _blocks(page, "text"):
        if not block.startswith("$ codedance"):
            continue
        for chunk in re.split(r"\n(?=\$ )", block.strip("\n")):
            command, *expected = chunk.rstrip("\n").split("\n")
            found.append((command[2:], [line for line in expected if line.strip()]))
    return found


def _matches(expected: list[str], actual: list[str]) -> bool:
    pattern = "".join("(?:.*\n)*" if line == "..." else re.escape(line) + "\n" for line in expected)
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


def _run(command: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The command's output lines, run in-process (as a shell in ``cwd`` would run it)."""
    from click.testing import CliRunner

    from codedance.core.cli import cli

    quiet = command.endswith(">/dev/null")
    args = shlex.split(command.removesuffix(">/dev/null"))[1:]
    monkeypatch.chdir(cwd)
    for name in [n for n in os.environ if n.startswith(("CODEDANCE_", "MY_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CODEDANCE_LOAD_PLUGINS", "")
    monkeypatch.setenv("COLUMNS", "1000")
    result = CliRunner().invoke(cli, args, prog_name="codedance")
    out = "" if quiet else result.stdout
    return [line for line in (out + result.stderr).splitlines() if line.strip()]


def _workspace(page: str, folder: Path) -> Path:
    for block in _blocks(page, "yaml"):
        name = re.match(r"# (\S+\.yaml)\n", block)
        if name:
            (folder / name[1]).write_text(block)
    for name, text in INPUTS.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)
    return folder


CONFIGURATION = (DOCS / "configuration.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("command", "expected"), _sessions(CONFIGURATION), ids=[c for c, _ in _sessions(CONFIGURATION)]
)
def test_configuration_md_outputs_are_real(command, expected, tmp_path, monkeypatch):
    actual = _run(command, _workspace(CONFIGURATION, tmp_path), monkeypatch)
    assert _matches(expected, actual), (
        f"docs/configuration.md quotes for `{command}`:\n"
        + "\n".join(expected)
        + "\n\nbut it prints:\n"
        + "\n".join(actual)
    )


#: The folder of broken plugins docs/plugins.md quotes the problems of.
BROKEN_PLUGINS = {
    "typo.py": (
        "from codedance import hookimpl\n\n@hookimpl\ndef register_tool(register):\n    pass\n"
    ),
    "broken_import.py": "import definitely_not_installed_xyz\n",
    "raises.py": (
        "from codedance import hookimpl\n\n@hookimpl\ndef register_rewards(register):\n"
        "    raise RuntimeError('reward table missing')\n"
    ),
    "_echo.py": "def echo(text: str) -> str:\n    '''Echo.'''\n    return text\n",
    "dup_a.py": (
        "from codedance import hookimpl\n\nfrom ._echo import echo\n\n"
        "@hookimpl\ndef register_tools(register):\n    register(echo)\n"
    ),
    "boxes.py": (
        "from codedance import hookimpl\n\n\ndef count_red_pixels(path: str) -> int:\n"
        "    '''Count red pixels.'''\n    return 0\n\n\n"
        "@hookimpl\ndef register_tools(register):\n    register(count_red_pixels)\n"
    ),
    "forgot.py": "def register_tools(register):\n    pass\n",
}
BROKEN_PLUGINS["dup_b.py"] = BROKEN_PLUGINS["dup_a.py"]


def test_plugins_md_problem_messages_are_real(tmp_path, monkeypatch):
    import json

    plugs = tmp_path / "plugs"
    plugs.mkdir()
    for name, source in BROKEN_PLUGINS.items():
        (plugs / name).write_text(source)
    (tmp_path / "cfg.yaml").write_text("plugins: [./plugs]\n")
    report = json.loads(
        "\n".join(_run("codedance --config cfg.yaml plugins --json", tmp_path, monkeypatch))
    )
    problems = {p["message"].replace(str(tmp_path), "/tmp/cdtry") for p in report["problems"]}
    section = (
        (DOCS / "plugins.md").read_text(encoding="utf-8").split("### When a plugin is broken")[1]
    )
    quoted = [b.strip() for b in _blocks(section.split("\n### ")[0], "text")]
    assert len(quoted) == 6
    for message in quoted:
        assert message in problems, f"plugins.md quotes:\n{message}\nbut the problems are:\n" + (
            "\n".join(sorted(problems))
        )
