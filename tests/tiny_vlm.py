"""The tiny random-weight checkpoints the tests build offline (see codedance.trainers.verl.tiny).

They live in the package because ``codedance train --smoke`` builds them too; the tests
import them from here, as before.
"""

from __future__ import annotations

from codedance.trainers.verl.tiny import (
    CHAT_TEMPLATE,
    MAX_PIXELS,
    MIN_PIXELS,
    PRIMER_RESPONSES,
    SPECIAL_TOKENS,
    build_tiny,
    build_tiny_qwen2_5_vl,
    build_tiny_qwen3_vl,
)

__all__ = [
    "CHAT_TEMPLATE",
    "MAX_PIXELS",
    "MIN_PIXELS",
    "PRIMER_RESPONSES",
    "SPECIAL_TOKENS",
    "build_tiny",
    "build_tiny_qwen2_5_vl",
    "build_tiny_qwen3_vl",
]
