"""scripts/gpu-check.sh: everything but the GPU work, run for real here.

No GPU on this machine, so ``nvidia-smi`` is stood in by a two-line script that
prints an H100's line (``NVIDIA_SMI``); with it the script takes its GPU path, and
``--dry-run`` prints the plan. The skip rule runs the real pytest on the real GPU
tests, which skip here without CUDA and vLLM: the script must call that a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu-check.sh"
H100 = "NVIDIA H100 80GB HBM3, 81559 MiB"


def gpu_check(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fake_smi(tmp_path: Path, line: str = H100) -> str:
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\necho '{line}'\n" if line else "#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


def verdict(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_without_nvidia_smi_it_says_no_gpu_and_exits_3(tmp_path):
    result = gpu_check(NVIDIA_SMI=str(tmp_path / "missing"))
    assert result.returncode == 3
    assert result.stdout.strip().splitlines() == [verdict(result)]  # one line
    assert re.match(
        r"gpu-check: NO GPU \(.*lists no CUDA device; nothing was run; \d+ s\)$", verdict(result)
    )


def test_a_driver_without_a_device_is_no_gpu_too(tmp_path):
    result = gpu_check(NVIDIA_SMI=fake_smi(tmp_path, ""))
    assert (result.returncode, verdict(result).split(" (")[0]) == (3, "gpu-check: NO GPU")


def test_the_dry_run_installs_verls_vllm_pins_then_runs_both_gpu_tests(tmp_path):
    result = gpu_check(
        "--dry-run", NVIDIA_SMI=fake_smi(tmp_path), GPU_CHECK_VENV=str(tmp_path / "v")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    plan = [line for line in result.stdout.splitlines() if line.startswith("would run")]
    python = f"{tmp_path / 'v'}/bin/python"
    assert "verl[vllm]==0.9.1" in plan[-3]
    assert "-e .[train,hf,tools,rewards,dev]" in plan[-3]
    assert f"{python} -m pytest tests/test_model_vllm.py -m gpu" in plan[-2]
    assert f"{python} -m pytest tests/test_train_gpu.py -m gpu" in plan[-1]
    assert verdict(result).startswith("gpu-check: DRY RUN (")
    assert verdict(result).endswith(f"on {H100})")
    assert not (tmp_path / "v").exists()  # nothing was run


def test_the_named_tests_exist_and_are_gpu_tests():
    for name, test in [
        ("test_model_vllm.py", "test_tiny_model_generates_through_vllm"),
        ("test_train_gpu.py", "test_one_training_step_on_a_gpu"),
    ]:
        source = (ROOT / "tests" / name).read_text()
        assert f"@pytest.mark.gpu\ndef {test}(" in source


def test_gpu_tests_that_skip_are_a_failure(tmp_path):
    """The real GPU tests, run by the real pytest here, skip (no CUDA): a FAIL, exit 1."""
    pytest.importorskip("torch")
    env = {"NVIDIA_SMI": fake_smi(tmp_path), "GPU_CHECK_PYTHON": sys.executable}
    result = gpu_check("--no-install", timeout=300, **env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "'skipped': 1" in result.stdout
    assert verdict(result).startswith(
        "gpu-check: FAIL (failed or skipped: vLLM backend test,GRPO step with vLLM rollouts;"
    )


def test_an_unknown_option_is_a_usage_error():
    result = gpu_check("--fast")
    assert result.returncode == 2
    assert "unknown option '--fast'" in result.stderr
