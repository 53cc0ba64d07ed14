"""Determinism and kill-and-resume of whole workflow stages (the functions the rules call, on the jobs the
workflow resolves for them)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from pipeline_lib import io, plan, stages


def _same_tables(a: Path, b: Path, drop: tuple[str, ...] = ()) -> None:
    left, right = pd.read_parquet(a), pd.read_parquet(b)
    assert set(drop) <= set(left.columns)
    pd.testing.assert_frame_equal(left.drop(columns=list(drop)), right.drop(columns=list(drop)))
    assert io.read_meta(a) == io.read_meta(b)


def _finetune(config: dict, method: str, d: Path, pretrained: str | None) -> None:
    job = plan.finetune_job(config, "grid6", "corner", method)
    stages.finetune(job, 3, 1, pretrained, str(d / f"{method}.pt"), str(d / f"{method}.curve.parquet"),
                    str(d / f"{method}.samples.parquet"), str(d / f"{method}.metrics.parquet"))


def test_same_seed_gives_identical_parquet(test_config: dict, tmp_path: Path) -> None:
    for run in ("a", "b"):
        d = tmp_path / run
        stages.pretrain(plan.pretrain_job(test_config, "grid6", "full"), 3, 1, str(d / "model.pt"),
                        str(d / "pretrain.parquet"), str(d / "bands.parquet"))
        _finetune(test_config, "amortized", d, str(d / "model.pt"))
        _finetune(test_config, "scratch", d, None)
    _same_tables(tmp_path / "a" / "pretrain.parquet", tmp_path / "b" / "pretrain.parquet", drop=("seconds",))
    _same_tables(tmp_path / "a" / "bands.parquet", tmp_path / "b" / "bands.parquet")
    for method in ("amortized", "scratch"):
        # curves carry wall-clock seconds; everything else, samples and final metrics are identical
        _same_tables(tmp_path / "a" / f"{method}.curve.parquet", tmp_path / "b" / f"{method}.curve.parquet",
                     drop=("seconds",))
        for table in ("samples", "metrics"):
            _same_tables(tmp_path / "a" / f"{method}.{table}.parquet", tmp_path / "b" / f"{method}.{table}.parquet")
        assert io.load_checkpoint(tmp_path / "a" / f"{method}.pt.ckpt")["step"] == test_config["finetune"]["settings"][
            "steps"]  # its trained state, kept until the workflow has recorded the job as done
    meta = io.read_meta(tmp_path / "a" / "pretrain.parquet")
    assert meta["seed"] == 3 and meta["config"]["ot"] == "reachable"  # seed and resolved config beside results
    curve_meta = io.read_meta(tmp_path / "a" / "amortized.curve.parquet")
    assert curve_meta["seed"] == 3 and curve_meta["config"]["method"]["kind"] == "amortized"
    assert len(pd.read_parquet(tmp_path / "a" / "scratch.samples.parquet")) == test_config["evaluate"]["samples"]


def _pretrain_job(config: dict, out: Path) -> subprocess.Popen:
    code = ("import json, sys; from pipeline_lib import stages; job = json.loads(sys.argv[1]); "
            "stages.pretrain(job, 0, 1, sys.argv[2] + '/model.pt', sys.argv[2] + '/metrics.parquet', "
            "sys.argv[2] + '/bands.parquet')")
    job = plan.pretrain_job(config, "grid6", "full")
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(job), str(out)])


def test_killed_job_resumes_to_the_same_result(test_config: dict, tmp_path: Path) -> None:
    test_config["pretrain"]["settings"].update(steps=150, checkpoint_every=10, eval_every=50)
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
    assert 0 < step < 150

    assert _pretrain_job(test_config, killed).wait(timeout=300) == 0
    assert not (killed / "model.pt.ckpt.stale").exists()  # resumed (same inputs), not restarted
    _same_tables(ref / "metrics.parquet", killed / "metrics.parquet", drop=("seconds",))
    _same_tables(ref / "bands.parquet", killed / "bands.parquet")  # the band rows resume with the checkpoint
    assert io.load_checkpoint(checkpoint)["step"] == 150  # the trained state, kept until the workflow drops it

    # killed after its outputs were written but before Snakemake recorded the job as done: Snakemake deletes the
    # outputs and runs the job again, which resumes at its last step instead of training from step 0
    for name in ("model.pt", "metrics.parquet", "bands.parquet"):
        (killed / name).unlink()
    started = time.time()
    assert _pretrain_job(test_config, killed).wait(timeout=300) == 0
    _same_tables(ref / "metrics.parquet", killed / "metrics.parquet", drop=("seconds",))
    _same_tables(ref / "bands.parquet", killed / "bands.parquet")
    assert (ref / "model.pt").read_bytes() == (killed / "model.pt").read_bytes()  # equal states, equal bytes
    outputs = {"model.pt": ["model.pt", "metrics.parquet", "bands.parquet"]}
    (killed / "bands.parquet").unlink()
    assert io.drop_finished_checkpoints(killed, outputs) == []  # a job whose outputs are not all written keeps it
    assert _pretrain_job(test_config, killed).wait(timeout=300) == 0
    assert io.drop_finished_checkpoints(tmp_path, outputs) == [checkpoint, ref / "model.pt.ckpt"]
    assert not checkpoint.exists() and time.time() - started < 300


def test_a_bad_reward_value_anywhere_on_a_listed_space_stops_adaptation_before_training(test_config: dict,
                                                                                        tmp_path: Path) -> None:
    """A plug-in reward <= 0 on one cell that the config check's sample and the search may never meet: on a space
    that can be listed, the adaptation job evaluates every object first, so the run stops before its first step
    (threshold modes and random search: nothing else reads the whole landscape early)."""
    import pytest

    plugin = tmp_path / "rare.py"
    calls = tmp_path / "calls.txt"  # the size of each batch the reward is called on, in order
    plugin.write_text(f"import torch\n\ndef rare(x):\n    open({str(calls)!r}, 'a').write(f'{{len(x)}}\\n')\n"
                      "    r = torch.ones(len(x))\n    r[(x[:, 0] == 31) & (x[:, 1] == 30)] = -1.0\n    return r\n")
    test_config["envs"]["grid6"]["params"]["side"] = 32  # a far cell that a few steps from scratch never reach
    test_config["tasks"]["corner"] = {"reward": f"{plugin}:rare", "params": {}, "exponent": 1.0,
                                      "modes": {"kind": "threshold", "threshold": 0.5}}
    test_config["finetune"]["settings"]["steps"] = 4
    with pytest.raises(ValueError, match=r"task 'corner'.*returned -1.0 \(<= 0\) for the object .*'x0': 31, 'x1': 30"):
        _finetune(test_config, "random", tmp_path, None)  # no policy: nothing else reads the landscape early
    assert calls.read_text().split() == ["1024"]  # every cell at once, before any search batch
    assert not list(tmp_path.glob("random.*"))  # no checkpoint, curve or sample
