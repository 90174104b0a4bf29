"""`codedance train` checks the model path and the rows on disk before verl starts."""

from __future__ import annotations

import pytest
import yaml

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")
pytest.importorskip("verl", reason="the train extra (verl) is not installed")

from codedance.core.config import TrainingConfig  # noqa: E402
from codedance.trainers.verl.inputs import input_problems  # noqa: E402


def _parquet(path, rows: int):
    pq.write_table(pa.table({"prompt": [f"p{i}" for i in range(rows)]}), path)
    return str(path)


def test_twenty_rows_cannot_fill_a_batch_of_256(tmp_path):
    (tmp_path / "model").mkdir()
    training = TrainingConfig(
        model_path=str(tmp_path / "model"), train_files=[_parquet(tmp_path / "t.parquet", 20)]
    )
    (problem,) = input_problems(training)
    assert problem.startswith("training.train_files: 20 rows in all, fewer than")
    assert "train_batch_size = 256" in problem
    enough = training.model_copy(update={"train_batch_size": 20})
    assert input_problems(enough) == []


def test_a_missing_local_model_or_file_is_named_and_a_hub_id_is_not(tmp_path):
    training = TrainingConfig(
        model_path=str(tmp_path / "nowhere"), train_files=[str(tmp_path / "none.parquet")]
    )
    model, data = input_problems(training)
    assert model.startswith(f"training.model_path: '{tmp_path / 'nowhere'}' does not exist")
    assert data.startswith("training.train_files.0:")
    hub = training.model_copy(update={"model_path": "Qwen/Qwen2.5-VL-7B-Instruct"})
    assert len(input_problems(hub)) == 1


def test_dry_run_warns_and_a_run_stops_before_verl(codedance_cli, tmp_path):
    settings = {
        "model_path": str(tmp_path / "missing-model"),
        "train_files": [_parquet(tmp_path / "t.parquet", 20)],
        "output_dir": str(tmp_path / "out"),
    }
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"training": settings}))
    dry = codedance_cli("--config", str(config), "train", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "warning: training.model_path:" in dry.output
    assert "warning: training.train_files: 20 rows in all" in dry.output
    run = codedance_cli("--config", str(config), "train")
    assert run.exit_code == 1
    assert "does not exist" in run.output
