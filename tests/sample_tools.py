"""Tool functions the registry and catalog tests register.

They live apart from the test modules because a tool's module travels into the
sandbox as source and must not import codedance (the registry leaves such a tool
out when its plugin loads).
"""

from __future__ import annotations


def magnify(box: tuple[int, int, int, int]) -> str:
    """Magnify a box (a name no built-in tool uses)."""
    return f"magnify {box}"


def format_length(length: float, unit: str = "cm") -> str:
    """Format ``length`` with its unit. Rounds to two decimals.

    Longer explanation the prompt leaves out.
    """
    return f"{length:.2f} {unit}"


def rect_area(width: float, height: float) -> float:
    """Width times height."""
    return width * height


def undocumented(x):  # type: ignore[no-untyped-def]
    return x


def sample_tool(x: int) -> int:
    """Double x."""
    return 2 * x
