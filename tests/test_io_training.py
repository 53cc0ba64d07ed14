"""Parquet and checkpoint I/O, exact resume of a trainer from its checkpoint, and the NaN guard."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline_lib import io, plan
from pipeline_lib.config import method_config
from pipeline_lib.core.nets import masked_log_softmax
from pipeline_lib.core.rollout import rollout
from pipeline_lib.core.training import Trainer
from pipeline_lib.domains import make_env
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.methods.scratch import Scratch
from pipeline_lib.tasks.task import Task

CPU = torch.device("cpu")


def test_parquet_round_trip_with_meta(tmp_path: Path) -> None:
    df = pd.DataFrame({"step": [0, 10, 20], "l1": [1.5, 0.75, 0.25], "method": ["a", "b", "c"],
                       "ok": [True, False, True]}, index=[5, 6, 7])
    path = tmp_path / "sub" / "dir" / "table.parquet"
    io.write_parquet(df, path, seed=3, config={"steps": 20, "ot": "off"}, device=CPU)
    back = io.read_parquet(path)
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True))
    assert io.read_meta(path) == {"seed": 3, "config": {"steps": 20, "ot": "off"}, "device": "cpu"}
    assert [p.name for p in path.parent.iterdir()] == ["table.parquet"]  # no temp file left behind


def test_parquet_without_meta(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    io.write_parquet(pd.DataFrame({"x": [1, 2]}), path)
    assert io.read_meta(path) == {}
    assert io.read_parquet(path)["x"].tolist() == [1, 2]


def test_read_parquet_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.parquet does not exist"):
        io.read_parquet(tmp_path / "missing.parquet")


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    obj = {"w": torch.arange(6.0).view(2, 3), "step": 7, "rows": [{"a": 1.0}]}
    io.save_checkpoint(obj, path)
    back = io.load_checkpoint(path)
    assert torch.equal(back["w"], obj["w"]) and back["step"] == 7 and back["rows"] == [{"a": 1.0}]


def test_load_checkpoint_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.pt does not exist"):
        io.load_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9])
def test_load_checkpoint_truncated(tmp_path: Path, fraction: float) -> None:
    path = tmp_path / "model.pt.ckpt"
    io.save_checkpoint({"w": torch.randn(64, 64), "step": 3}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(RuntimeError, match="truncated or corrupt") as info:
        io.load_checkpoint(path)
    assert str(path) in str(info.value)


def test_resume_from_truncated_trainer_checkpoint(test_config: dict, tmp_path: Path) -> None:
    ckpt = tmp_path / "policy.pt.ckpt"
    scratch_trainer(test_config, 2, 1).run(ckpt)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="truncated or corrupt") as info:
        scratch_trainer(test_config, 4, 1).run(ckpt)
    assert str(ckpt) in str(info.value)


def test_load_checkpoint_garbage(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(RuntimeError, match="junk.pt is truncated or corrupt"):
        io.load_checkpoint(path)


def scratch_trainer(config: dict, steps: int, every: int) -> Scratch:
    _, cfg = method_config(config, "scratch", "grid6")
    cfg = dataclasses.replace(cfg, steps=steps, eval_every=every, checkpoint_every=every, batch_size=8, hidden=16)
    job = plan.target_job(config, "grid6", "corner")
    env = make_env(job["env"]["domain"], job["env"]["params"], CPU)
    task = Task(env, job["task"], job["resources"])  # a fresh task: its oracle's counter starts at 0
    return Scratch(task, cfg, seed=0, device=CPU)


def curve(df: pd.DataFrame) -> pd.DataFrame:
    """A curve without its wall-clock column, the one column two identical runs may differ in."""
    assert "seconds" in df.columns
    return df.drop(columns="seconds")


def test_scratch_trainer_resume_is_exact(test_config: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    n, k, every = 6, 4, 2
    full = scratch_trainer(test_config, n, every).run(tmp_path / "full.ckpt")
    assert full["step"].tolist() == [0, 1, 2, 4, 6]  # step 1: a power of two before the first period
    assert full["reward_calls"].iloc[-1] == 8 * n  # one reward call per terminal object
    assert {"l1", "kl", "loss", "modes_found", "trajectories", "unique_reward_calls", "seconds"} <= set(full.columns)
    assert full["l1"].between(0, 2).all() and (full["seconds"].diff().iloc[1:] >= 0).all()
    assert (tmp_path / "full.ckpt").exists()

    first = scratch_trainer(test_config, n, every)
    first.steps = k  # as if killed after step k
    part = first.run(tmp_path / "part.ckpt")
    assert part["step"].tolist() == [0, 1, 2, 4]
    assert io.load_checkpoint(tmp_path / "part.ckpt")["step"] == k

    resumed_trainer = scratch_trainer(test_config, n, every)
    with caplog.at_level(logging.INFO, logger="pipeline_lib.core.training"):
        resumed = resumed_trainer.run(tmp_path / "part.ckpt")
    assert resumed_trainer.step == n
    # the killed attempt's progress lines come first in the resumed job's log (Snakemake emptied the file)
    lines = [r.getMessage() for r in caplog.records]
    resumed_at = next(i for i, line in enumerate(lines) if "resumed from" in line)
    assert [line.split(" (")[0] for line in lines[:resumed_at]] == [
        f"(before the resume) scratch step {s}/{k}" for s in (1, 2, 4)]
    assert lines[resumed_at + 1].startswith(f"scratch step {n}/{n}")
    pd.testing.assert_frame_equal(curve(resumed), curve(full))
    assert resumed_trainer.oracle.calls == 8 * n  # the oracle's count is part of the checkpoint
    assert resumed_trainer.task.oracle is resumed_trainer.oracle
    assert resumed_trainer.oracle.unique_calls == full["unique_reward_calls"].iloc[-1]
    # the final model is the same bit for bit too
    again = scratch_trainer(test_config, n, every)
    again.run(None)
    for a, b in zip(resumed_trainer.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_scratch_trainer_without_checkpoint_matches(test_config: dict, tmp_path: Path) -> None:
    with_ckpt = scratch_trainer(test_config, 3, 1).run(tmp_path / "c.ckpt")
    without = scratch_trainer(test_config, 3, 1).run(None)
    pd.testing.assert_frame_equal(curve(with_ckpt), curve(without))


def test_run_on_finished_checkpoint_trains_nothing(test_config: dict, tmp_path: Path) -> None:
    ckpt = tmp_path / "done.ckpt"
    first = scratch_trainer(test_config, 2, 1).run(ckpt)
    trainer = scratch_trainer(test_config, 2, 1)
    again = trainer.run(ckpt)
    pd.testing.assert_frame_equal(again, first)  # the rows are restored verbatim, wall-clock seconds included
    assert trainer.oracle.calls == 16  # restored, not incremented


def test_the_trained_state_is_checkpointed_whatever_checkpoint_every(test_config: dict, tmp_path: Path) -> None:
    trainer = scratch_trainer(test_config, 3, 2)  # saves at step 2, then the trained state at 3
    trainer.run(tmp_path / "c.ckpt")
    assert io.load_checkpoint(tmp_path / "c.ckpt")["step"] == 3


def test_equal_checkpoints_are_equal_bytes(tmp_path: Path) -> None:
    """The archive inside a torch file is named after a path it is given; saved through a file object, it is not the
    temporary file's random name, so a fingerprint of the file (a pre-trained model's) sees only its contents."""
    state = {"w": torch.arange(6.0), "step": 3}
    io.save_checkpoint(state, tmp_path / "a.pt")
    io.save_checkpoint(state, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_a_checkpoint_for_other_inputs_is_set_aside(test_config: dict, tmp_path: Path, caplog) -> None:
    """A killed run's checkpoint resumes only under the same input digest (stages.fingerprint: job, seed,
    data, pre-trained model); for other inputs it is moved to .stale, the run starts afresh, and the log says
    which of the job's values changed."""
    from pipeline_lib.stages import input_record

    ckpt = tmp_path / "run.ckpt"
    job = {"method": {"name": "scratch"}, "settings": {"lr": 0.001, "steps": 4, "checkpoint_every": 2}}
    first = scratch_trainer(test_config, 4, 2)
    first.steps, first.inputs, first.input_record = 2, "old", input_record(job, 0)  # killed after step 2
    first.run(ckpt)
    other = scratch_trainer(test_config, 4, 2)
    other.inputs = "new"
    other.input_record = input_record({**job, "settings": {**job["settings"], "lr": 0.002, "checkpoint_every": 1}}, 0)
    with caplog.at_level("WARNING"):
        rows = other.run(ckpt)
    assert "other inputs (settings.lr: 0.001 -> 0.002)" in caplog.text  # checkpoint_every is not an input
    assert rows["step"].tolist() == [0, 1, 2, 4] and other.oracle.calls == 8 * 4  # all four steps trained here
    assert (tmp_path / "run.ckpt.stale").exists()
    same = scratch_trainer(test_config, 4, 2)
    same.inputs = "new"
    same.run(ckpt)
    assert same.oracle.calls == other.oracle.calls  # the finished checkpoint of the same inputs: nothing retrained


def test_a_checkpoint_from_another_device_resumes_with_a_new_seed(test_config: dict, tmp_path: Path, caplog) -> None:
    """A CPU and a CUDA generator hold states of different sizes (set_state raises): a job killed on a GPU node and
    rerun on a CPU one (or the reverse) keeps its trained state and rows, draws from a seed derived from the saved
    generator, and says so."""
    ckpt = tmp_path / "run.ckpt"
    first = scratch_trainer(test_config, 4, 2)
    first.steps = 2  # killed after step 2
    first.run(ckpt)
    state = io.load_checkpoint(ckpt)
    assert state["gen_device"] == "cpu"
    state["gen_device"], state["gen"] = "cuda", torch.tensor([7] * 16, dtype=torch.uint8)  # a CUDA generator's
    io.save_checkpoint(state, ckpt)
    resumed = scratch_trainer(test_config, 4, 2)
    with caplog.at_level("WARNING"):
        rows = resumed.run(ckpt)
    assert "from a checkpoint written on cuda" in caplog.text
    assert rows["step"].tolist() == [0, 1, 2, 4] and resumed.oracle.calls == 8 * 4  # steps 3 and 4 trained here
    again = scratch_trainer(test_config, 4, 2)
    io.save_checkpoint(state, ckpt)
    assert again.run(ckpt).drop(columns="seconds").equals(rows.drop(columns="seconds"))  # the new seed is fixed


def test_fingerprint_sees_the_job_seed_data_and_model_file(tmp_path: Path) -> None:
    from pipeline_lib.stages import fingerprint

    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    data = torch.arange(6).view(3, 2)
    base = fingerprint({"a": 1}, 0, data, str(model))
    assert base == fingerprint({"a": 1}, 0, data.clone(), str(model))
    assert len({base, fingerprint({"a": 2}, 0, data, str(model)), fingerprint({"a": 1}, 1, data, str(model)),
                fingerprint({"a": 1}, 0, data + 1, str(model)), fingerprint({"a": 1}, 0, data, None)}) == 5
    model.write_bytes(b"retrained")
    assert fingerprint({"a": 1}, 0, data, str(model)) != base
    job = {"a": 1, "settings": {"steps": 100, "checkpoint_every": 50}}
    assert fingerprint(job, 0) == fingerprint({**job, "settings": {"steps": 100, "checkpoint_every": 20}}, 0)
    assert fingerprint(job, 0) != fingerprint({**job, "settings": {"steps": 200, "checkpoint_every": 50}}, 0)


def test_changed_inputs_names_what_differs() -> None:
    from pipeline_lib.core.training import changed_inputs

    old = {"seed": "0", "settings.lr": "0.001", "task.name": '"ring"'}
    assert changed_inputs(old, {**old, "seed": "1", "settings.steps": "10"}) == \
        "seed: 0 -> 1; settings.steps: absent -> 10"
    assert "the data or the pre-trained model" in changed_inputs(old, dict(old))  # same values, other digest
    assert changed_inputs(None, old) == "job settings, seed, data or pre-trained model"  # a checkpoint of old code
    many = {f"k{i}": "1" for i in range(8)}
    assert changed_inputs(many, {k: "2" for k in many}).endswith("; and 3 more")


class _NanTrainer(Trainer):
    name = "nan-test"

    def __init__(self, nan_at: int) -> None:
        super().__init__()
        self.steps, self.eval_every, self.checkpoint_every = 10, 1, 1
        self.gen = torch.Generator().manual_seed(0)
        self.nan_at = nan_at

    def train_step(self) -> dict[str, float]:
        return {"loss": float("nan") if self.step + 1 == self.nan_at else 1.0}

    def evaluate(self, losses: dict[str, float]) -> dict[str, float]:
        return {"step": self.step, **losses}


def test_nan_guard(tmp_path: Path) -> None:
    trainer = _NanTrainer(nan_at=3)
    ckpt = tmp_path / "nan.ckpt"
    with pytest.raises(FloatingPointError, match="nan-test: non-finite loss at step 3") as info:
        trainer.run(ckpt)
    assert str(ckpt) in str(info.value)
    assert io.load_checkpoint(ckpt)["step"] == 2  # the last good checkpoint is kept
    saved = io.read_parquet(f"{ckpt}.failed.parquet")  # and the metrics rows up to the failure
    assert saved["step"].tolist() == [row["step"] for row in trainer.rows]
    assert io.read_meta(f"{ckpt}.failed.parquet")["failed_step"] == 3
    assert [r["step"] for r in trainer.rows] == [0, 1, 2]


def test_inf_guard() -> None:
    class InfTrainer(_NanTrainer):
        def train_step(self) -> dict[str, float]:
            return {"loss": 1.0, "other": float("-inf")}

    with pytest.raises(FloatingPointError, match="non-finite loss at step 1"):
        InfTrainer(nan_at=0).run()


def test_a_policy_gone_nan_stops_the_job_with_its_step_and_rows(tmp_path: Path) -> None:
    class NanPolicyTrainer(_NanTrainer):
        def train_step(self) -> dict[str, float]:
            env, broken = HyperGrid(2, 4), self.step + 1 == self.nan_at

            def policy(states, rows, mask):
                logits = torch.full((len(states), env.n_actions), torch.nan if broken else 0.0)
                return masked_log_softmax(logits, mask)

            rollout(env, policy, 8, generator=self.gen)
            return {"loss": 1.0}

    ckpt = tmp_path / "nan-policy.ckpt"
    with pytest.raises(FloatingPointError, match="non-finite values at step 4: rollout step 0: the policy gave NaN"):
        NanPolicyTrainer(nan_at=4).run(ckpt)
    assert io.load_checkpoint(ckpt)["step"] == 3
    assert io.read_parquet(f"{ckpt}.failed.parquet")["step"].tolist() == [0, 1, 2, 3]
    assert io.read_meta(f"{ckpt}.failed.parquet")["failed_step"] == 4


def test_a_broken_policy_met_in_evaluation_stops_the_job_too(tmp_path: Path) -> None:
    class NanEvalTrainer(_NanTrainer):
        def evaluate(self, losses: dict[str, float]) -> dict[str, float]:
            if self.step == 5:
                raise FloatingPointError("rollout step 0: the policy gave NaN")
            return {"step": self.step, **losses}

    ckpt = tmp_path / "nan-eval.ckpt"
    with pytest.raises(FloatingPointError, match="non-finite values in the evaluation at step 5: rollout step 0"):
        NanEvalTrainer(nan_at=0).run(ckpt)  # train_step never fails
    assert io.read_parquet(f"{ckpt}.failed.parquet")["step"].tolist() == [0, 1, 2, 3, 4]
    assert io.read_meta(f"{ckpt}.failed.parquet")["failed_step"] == 5


# ------------------------------------------------------------------------------------------ CPU slots


def test_cpu_slots_queue_jobs_beyond_the_host_count(tmp_path: Path) -> None:
    """With 1 slot a second holder waits until the first lets go; all-or-nothing for several threads;
    0 means no limit; a bad setting names the key."""
    from pipeline_lib.runtime import cpu_slots, slot_count

    order: list[str] = []
    first_in, release = threading.Event(), threading.Event()

    def first() -> None:
        with cpu_slots(1, 1, where=tmp_path):
            order.append("first in")
            first_in.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        first_in.wait(10)
        with cpu_slots(1, 1, poll_s=0.01, where=tmp_path):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_in.wait(10)
    time.sleep(0.2)
    assert order == ["first in"]  # the second is still waiting
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["first in", "first out", "second in"]
    with cpu_slots(2, 2, where=tmp_path), cpu_slots(5, 0, where=tmp_path):  # 0: no limit, never waits
        pass
    assert slot_count("auto") >= 1 and slot_count(3) == 3
    with pytest.raises(ValueError, match="cpu_slots: expected 'auto' or an integer"):
        slot_count("many")


def test_kept_memory_serves_a_large_tensor_again_without_page_faults() -> None:
    """After ``keep_freed_memory`` a 64 MB tensor allocated again and again comes back from malloc's heap: far
    fewer minor page faults than its 16,384 pages, which glibc's default (a fresh mapping per block over 32 MB)
    pays at every allocation (a subprocess, so the test process keeps its own allocator settings)."""
    import subprocess
    import sys

    script = """
import resource, sys, torch
from pipeline_lib.runtime import keep_freed_memory
if not keep_freed_memory():
    print("unsupported"); sys.exit()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):  # the heap grows to hold it over the first few, touching its new pages once
    torch.ones(16 << 20)
before = faults()
for _ in range(5):
    torch.ones(16 << 20)
print((faults() - before) / 5)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    if out[-1] == "unsupported":
        pytest.skip("not glibc: malloc's settings are left as they are")
    assert float(out[-1]) < 1000


def test_a_checkpoint_whose_job_snakemake_holds_incomplete_stays(tmp_path: Path) -> None:
    """Outputs written just before a Ctrl-C stopped the run: Snakemake reruns the job (--rerun-incomplete), which
    must find its trained state."""
    folder = tmp_path / "grid" / "pretrain" / "full" / "seed0"
    folder.mkdir(parents=True)
    checkpoint = folder / "model.pt.ckpt"
    checkpoint.write_bytes(b"trained")
    for name in ("model.pt", "metrics.parquet"):
        (folder / name).write_bytes(b"out")
    outputs = {"model.pt": ["model.pt", "metrics.parquet"]}
    asked = []

    def held(files: list[Path]) -> bool:
        asked.append(files)
        return True

    assert io.drop_finished_checkpoints(tmp_path, outputs, held) == [] and checkpoint.exists()
    assert asked == [[folder / "model.pt", folder / "metrics.parquet"]]
    assert io.drop_finished_checkpoints(tmp_path, outputs, lambda files: False) == [checkpoint]


def test_a_checkpoint_set_aside_for_other_inputs_goes_once_its_job_has_finished(tmp_path: Path) -> None:
    """``X.ckpt.stale`` (a killed run's state for settings since changed) is removed with the finished job's own
    checkpoint, not left behind for ever; a job still to finish keeps both."""
    folder = tmp_path / "grid" / "finetune" / "corner" / "dqn" / "seed0"
    folder.mkdir(parents=True)
    stale, checkpoint = folder / "policy.pt.ckpt.stale", folder / "policy.pt.ckpt"
    stale.write_bytes(b"old inputs")
    checkpoint.write_bytes(b"trained")
    outputs = {"policy.pt": ["policy.pt", "curve.parquet"]}
    (folder / "policy.pt").write_bytes(b"out")
    assert io.drop_finished_checkpoints(tmp_path, outputs) == [] and stale.exists()  # curve.parquet not written
    (folder / "curve.parquet").write_bytes(b"out")
    assert io.drop_finished_checkpoints(tmp_path, outputs) == [checkpoint, stale]


def test_a_second_process_of_a_job_waits_for_the_first(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A job left running by a killed Snakemake and the same job of the next run: the second waits for the first
    (then resumes from its checkpoint) instead of training beside it."""
    outputs = [tmp_path / "job" / "model.pt", tmp_path / "job" / "metrics.parquet"]
    order, first_holds, release = [], threading.Event(), threading.Event()

    def first() -> None:
        with io.job_lock(outputs):
            order.append("first in")
            first_holds.set()
            release.wait(10)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert first_holds.wait(10)
    threading.Timer(0.5, release.set).start()
    with caplog.at_level(logging.WARNING, logger="pipeline_lib.io"), io.job_lock(outputs):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
    assert "another process is running this job" in caplog.text


def test_a_write_removes_what_a_kill_left_of_it_and_is_readable_as_any_new_file(tmp_path: Path, monkeypatch) -> None:
    """A kill mid-write leaves a hidden temp file beside the target: the next write of that file (a rerun of any job,
    training or not) removes it, and only it; the file written gets the umask's permissions, not mkstemp's 0600."""
    left = tmp_path / ".table.parquet.ab12cd_3.tmp"
    keep = [tmp_path / ".table.parquet.ckpt.ab12cd_3.tmp", tmp_path / ".other.parquet.ab12cd_3.tmp"]
    for f in [left, *keep]:
        f.write_bytes(b"half")
    monkeypatch.setattr(io, "_UMASK", 0o027)  # a process's umask, read once at import
    io.write_parquet(pd.DataFrame({"x": [1]}), tmp_path / "table.parquet")
    assert not left.exists() and all(f.exists() for f in keep)
    assert (tmp_path / "table.parquet").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".other.parquet.ab12cd_3.tmp",
                                                                 ".table.parquet.ckpt.ab12cd_3.tmp", "table.parquet"])


def test_a_collected_table_names_the_job_files_it_gathers(tmp_path: Path) -> None:
    for seed in (0, 1):
        io.write_parquet(pd.DataFrame({"seed": [seed], "x": [seed * 2.0]}), tmp_path / f"s{seed}.parquet", seed=seed)
    paths = [str(tmp_path / "s0.parquet"), str(tmp_path / "s1.parquet")]
    io.collect(paths, str(tmp_path / "all.parquet"), ("seed",))
    assert io.read_parquet(tmp_path / "all.parquet")["x"].tolist() == [0.0, 2.0]
    assert io.read_meta(tmp_path / "all.parquet") == {"collected_from": paths}
    assert io.read_meta(paths[1]) == {"seed": 1}  # each job's own file keeps its seed
    io.collect([], str(tmp_path / "none.parquet"), ("env", "seed"))
    assert list(io.read_parquet(tmp_path / "none.parquet").columns) == ["env", "seed"]


def test_a_damaged_results_table_is_named_with_the_way_out(tmp_path: Path) -> None:
    """A table cut short by hand (a kill cannot: writes are atomic) is named with the command that remakes it."""
    path = tmp_path / "curve.parquet"
    io.write_parquet(pd.DataFrame({"step": [0, 1]}), path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"curve.parquet is truncated or corrupt \(.*\); remake it: snakemake --cores "
                                         r"8 all --forcerun .*curve.parquet"):
        io.read_parquet(path)
