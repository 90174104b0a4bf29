"""Built-in plugin: registers the ``replay`` model backend (:mod:`codedance.runtime.replay`)."""

from __future__ import annotations

from codedance import hookimpl
from codedance.core.hookspecs import Register
from codedance.runtime.replay import ReplayModel

__all__ = ["register_models"]


@hookimpl
def register_models(register: Register) -> None:
    register(ReplayModel)
