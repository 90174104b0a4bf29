"""The live process tree, read from /proc: what a session's init or relay kills.

Shared by the local backend's init (worker/session.py) and the Docker relay
(worker/relay.py); both run inside the sandbox with nothing but the standard library.
"""

from __future__ import annotations

import os

__all__ = ["children_map", "descendants"]


def children_map() -> dict[int, list[tuple[int, int]]]:
    """parent pid -> [(start time, pid)] of live processes (zombies and dead ones left out)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X"):
            children.setdefault(int(fields[1]), []).append((int(fields[19]), int(entry)))
    return children


def descendants(root: int, children: dict[int, list[tuple[int, int]]] | None = None) -> list[int]:
    """Every live descendant of ``root`` (from ``children``, read now if not given)."""
    tree = children_map() if children is None else children
    found, stack = [], [root]
    while stack:
        for _, child in tree.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found
