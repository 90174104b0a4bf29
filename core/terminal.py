"""Text from model-written code, made safe to print on a user's terminal.

Sandbox output is hostile input: an escape sequence in it can write the user's
clipboard (OSC 52), retitle or clear the terminal, move the cursor to forge
earlier lines, or reorder text with bidirectional overrides. :func:`printable`
shows each such character as a visible escape (``\\x1b``, ``\\u202e``) instead of
sending it, so the user sees that it was there; newline and tab pass through.
Machine-readable output (JSON) keeps the exact text instead: ``json.dumps``
escapes every control character itself, losslessly.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls but tab and newline, DEL, C1 controls, bidirectional overrides and
# isolates, and lone surrogates (undecodable bytes, which no terminal can show).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every terminal control character shown as a visible escape."""
    return _UNSAFE.sub(_escape, text)
