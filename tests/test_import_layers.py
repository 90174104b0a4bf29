"""Subpackages import each other in one direction: no cycles, function-level imports included.

Read statically (ast), so a cycle hidden in a function body or a lazily imported
module is found too; imports under ``if TYPE_CHECKING:`` are left out (they never
run). ``plugins/`` holds built-in registrations: nothing else imports from it.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PACKAGE = {"tests", "examples", "bench", "scripts", "docs", "build"}


def _subpackages() -> list[str]:
    return sorted(
        p.name
        for p in ROOT.iterdir()
        if (p / "__init__.py").is_file() and p.name not in NOT_PACKAGE
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Absolute names imported anywhere in ``tree``, skipping ``if TYPE_CHECKING:``."""
    found: list[tuple[str, int]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _walk(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for rest in child.orelse:
                yield rest
                yield from _walk(rest)
            continue
        yield child
        yield from _walk(child)


def _edges() -> dict[tuple[str, str], list[str]]:
    """(importer subpackage, imported subpackage) -> the ``file:line`` of each import."""
    subpackages = set(_subpackages())
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for top in subpackages:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            module = "codedance." + ".".join(relative.with_suffix("").parts)
            is_package = path.name == "__init__.py"
            module = module.removesuffix(".__init__")
            tree = ast.parse(path.read_text(encoding="utf-8"), str(relative))
            for name, line in _imports(tree, module, is_package):
                parts = name.split(".")
                inside = parts[0] == "codedance" and len(parts) > 1 and parts[1] in subpackages
                if inside and parts[1] != top:
                    edges[top, parts[1]].append(f"{relative.as_posix()}:{line}")
    return edges


def _cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one subpackage (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_between_subpackages():
    edges = _edges()
    problems = []
    for group in _cycles(edges):
        inside = {k: v for k, v in edges.items() if k[0] in group and k[1] in group}
        lines = [f"  {a} -> {b}: {', '.join(places[:4])}" for (a, b), places in inside.items()]
        problems.append(f"cycle {{{', '.join(group)}}}:\n" + "\n".join(sorted(lines)))
    assert not problems, "import cycles between subpackages:\n" + "\n".join(problems)


def test_nothing_outside_plugins_imports_from_it():
    offenders = [p for (source, target), ps in _edges().items() if target == "plugins" for p in ps]
    assert offenders == [], "built-in registrations are imported by: " + ", ".join(offenders)


def test_the_cycle_finder_finds_a_cycle():
    edges = {("a", "b"): ["a/x.py:1"], ("b", "c"): ["b/y.py:2"], ("c", "a"): ["c/z.py:3"]}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({("a", "b"): ["a/x.py:1"]}) == []


def test_cli_code_lives_in_commands_one_module_per_command(codedance_registry):
    """``commands/<name>.py`` holds ``codedance <name>``; elsewhere only the root group
    (core/cli.py, the framework plugin commands use too) is a click command."""
    decorator = re.compile(r"^@click\.(command|group)\b", re.MULTILINE)
    stray = [
        relative
        for top in _subpackages()
        if top != "commands"
        for path in sorted((ROOT / top).rglob("*.py"))
        if (relative := path.relative_to(ROOT).as_posix()) != "core/cli.py"
        and decorator.search(path.read_text(encoding="utf-8"))
    ]
    assert stray == [], "click commands outside commands/: " + ", ".join(stray)
    for entry in codedance_registry.entries("command"):
        if entry.plugin.name == "codedance.plugins.commands":
            assert Path(entry.source or "").resolve().relative_to(ROOT).as_posix() == (
                f"commands/{entry.name}.py"
            ), f"`codedance {entry.name}` is defined in {entry.source}"
