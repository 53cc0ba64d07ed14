"""Determinism and kill-and-resume of whole workflow stages (the functions the rules call)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from pipeline_lib import io, stages


def _same_tables(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    assert io.read_meta(a) == io.read_meta(b)


def test_same_seed_gives_identical_parquet(test_config: dict, tmp_path: Path) -> None:
    for run in ("a", "b"):
        d = tmp_path / run
        stages.pretrain(test_config, "grid6", "full", 3, 1, str(d / "model.pt"), str(d / "pretrain.parquet"))
        stages.finetune(test_config, "grid6", "corner", "amortized", 3, 1, str(d / "model.pt"), str(d / "policy.pt"),
                        str(d / "curve.parquet"))
        stages.finetune(test_config, "grid6", "corner", "scratch", 3, 1, None, str(d / "scratch.pt"),
                        str(d / "scratch.parquet"))
    for name in ("pretrain.parquet", "curve.parquet", "scratch.parquet"):
        _same_tables(tmp_path / "a" / name, tmp_path / "b" / name)
    meta = io.read_meta(tmp_path / "a" / "pretrain.parquet")
    assert meta["seed"] == 3 and meta["config"]["ot"] == "reachable"  # seed and resolved config beside results


def _pretrain_job(config: dict, out: Path) -> subprocess.Popen:
    code = ("import json, sys; from pipeline_lib import stages; c = json.loads(sys.argv[1]); "
            "stages.pretrain(c, 'grid6', 'full', 0, 1, sys.argv[2] + '/model.pt', sys.argv[2] + '/metrics.parquet')")
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(config), str(out)])


def test_killed_job_resumes_to_the_same_result(test_config: dict, tmp_path: Path) -> None:
    test_config["pretrain"]["settings"].update(steps=400, checkpoint_every=25, eval_every=50)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert _pretrain_job(test_config, ref).wait(timeout=300) == 0

    job = _pretrain_job(test_config, killed)
    checkpoint = killed / "model.pt.ckpt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let it run on past the first checkpoint
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert checkpoint.exists(), "the job finished or never checkpointed before it was killed"
    assert not (killed / "metrics.parquet").exists()
    step = io.load_checkpoint(checkpoint)["step"]
    assert 0 < step < 400

    assert _pretrain_job(test_config, killed).wait(timeout=300) == 0
    _same_tables(ref / "metrics.parquet", killed / "metrics.parquet")
    assert not checkpoint.exists()  # removed once the final outputs are written
