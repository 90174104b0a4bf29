"""``codedance doctor`` asks each backend about itself: ``doctor()`` for what is missing,
and, for a usable sandbox, the contract's ``describe()`` for what a session isolates."""

from __future__ import annotations

import json
import types

from codedance import hookimpl
from codedance.sandboxes.base import SandboxBackend


class _Plain(SandboxBackend):
    """A backend that overrides neither doctor() nor describe()."""

    name = "plain-test"

    def open_session(self, spec=None):
        raise NotImplementedError


class _Described(_Plain):
    name = "described-test"

    @classmethod
    def describe(cls) -> str:
        return "a session per test, nothing shared"


class _Broken(_Plain):
    name = "broken-test"

    @classmethod
    def describe(cls) -> str:
        raise RuntimeError("probe failed")


def _rows(codedance_cli, register_plugin) -> dict[str, dict[str, str]]:
    @hookimpl
    def register_sandboxes(register):
        for backend in (_Plain, _Described, _Broken):
            register(backend)

    register_plugin(types.SimpleNamespace(register_sandboxes=register_sandboxes), "doctor-test")
    result = codedance_cli("doctor", "--json")
    return {c["name"]: c for c in json.loads(result.output) if c["area"] == "backend"}


def test_a_usable_sandbox_shows_its_describe_line(codedance_cli, register_plugin):
    rows = _rows(codedance_cli, register_plugin)
    assert rows["sandbox described-test"]["status"] == "ok"
    assert rows["sandbox described-test"]["detail"] == "a session per test, nothing shared"
    assert rows["sandbox plain-test"]["detail"] == "usable"  # the base class's describe()


def test_a_raising_describe_is_a_warning_naming_it(codedance_cli, register_plugin):
    row = _rows(codedance_cli, register_plugin)["sandbox broken-test"]
    assert row["status"] == "warn"
    assert row["detail"] == "describe() raised RuntimeError: probe failed"


def test_models_are_not_described_by_class(codedance_cli, register_plugin):
    """A model's describe() names a configured instance, so doctor does not call it."""
    assert _rows(codedance_cli, register_plugin)["model replay"]["detail"] == "usable"


def test_backend_rows_replace_the_old_engine_and_key_rows(codedance_cli, register_plugin):
    rows = _rows(codedance_cli, register_plugin)
    assert "docker engine" not in rows
    assert "e2b" not in rows
    assert {"sandbox docker", "sandbox e2b"} <= set(rows)
