"""The local backend passes the sandbox conformance suite (bubblewrap when installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from codedance.core.config import SandboxConfig
from codedance.sandboxes.local import LocalSandbox
from codedance.testing import SandboxConformance


class TestLocalSandbox(SandboxConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def sandbox_backend(cls) -> Iterator[LocalSandbox]:
        with LocalSandbox(SandboxConfig(timeout_s=10)) as backend:
            yield backend


def test_isolation_is_named_in_every_record():
    with LocalSandbox() as backend, backend.open_session() as session:
        record = session.run("1")
    assert record.isolation == session.isolation
    assert "namespaces" in record.isolation or "NO ISOLATION" in record.isolation
