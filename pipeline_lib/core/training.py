"""The loop every trainer shares: evaluation cadence, progress logs, NaN guard, atomic checkpoints
and exact resume (model, optimiser and RNG states, and the metrics rows written so far)."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline_lib import io

log = logging.getLogger(__name__)


def added(default: Any) -> Any:
    """A settings field added after results existed, whose default keeps the old behaviour: while at its
    default it is left out of a job's params (``job_settings``), so adding it reruns no finished job."""
    return dataclasses.field(default=default, metadata={"added": True})


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel: one pass over all parameters instead of about a dozen small operations per
    tensor, which at the small batches of GFlowNet training is a measurable share of a step (CPU and CUDA;
    the same update up to float round-off)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def job_settings(settings: Any) -> dict[str, Any]:
    """A settings dataclass as a job carries it (the rule params, Snakemake's rerun trigger): every field,
    less the ``added`` ones at their defaults (the stage rebuilds the dataclass, so they come back)."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if not (f.metadata.get("added") and getattr(settings, f.name) == f.default)}


def changed_inputs(old: dict[str, str] | None, new: dict[str, str], most: int = 5) -> str:
    """Which of a job's values differ between a checkpoint's record and this run's, as ``key: old -> new``; where
    the values agree (or the checkpoint has no record) the data or the pre-trained model changed."""
    if not old or not new:
        return "job settings, seed, data or pre-trained model"
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if not keys:
        return "the data or the pre-trained model; the job's settings and seed are the same"
    shown = [f"{k}: {old.get(k, 'absent')} -> {new.get(k, 'absent')}" for k in keys[:most]]
    return "; ".join(shown) + (f"; and {len(keys) - most} more" if len(keys) > most else "")


class Trainer:
    """Subclasses set ``steps``, ``eval_every``, ``checkpoint_every``, ``gen`` and ``stateful`` (the
    attribute names to checkpoint) and implement ``train_step`` and ``evaluate``."""

    name = "trainer"
    stateful: tuple[str, ...] = ()
    FORMAT = 2  # checkpoint layout; a checkpoint of another layout (older code) is set aside, not resumed
    steps: int
    eval_every: int
    checkpoint_every: int
    gen: torch.Generator

    def __init__(self) -> None:
        self.step = 0
        self.rows: list[dict[str, Any]] = []
        self.elapsed = 0.0
        # what the run depends on (stages.fingerprint: the job, seed, data, pre-trained model); a checkpoint
        # written for other inputs is set aside, not resumed
        self.inputs: str | None = None
        self.input_record: dict[str, str] = {}  # the job's values by key (stages.input_record): what changed, if so
        # the progress lines logged so far: Snakemake empties a job's log before running it again, so a resumed run
        # logs its earlier attempts' lines from the checkpoint before its own
        self.progress: list[str] = []

    def train_step(self) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self, losses: dict[str, float]) -> dict[str, Any]:
        raise NotImplementedError

    def on_checkpoint(self) -> None:
        """Hook after each checkpoint (e.g. persisting an expensive oracle's cache)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit on CPU."""
        state = {"format": self.FORMAT, "inputs": self.inputs, "input_record": self.input_record,
                 "step": self.step, "rows": self.rows, "progress": self.progress,
                 "elapsed": self.elapsed,
                 "gen": self.gen.get_state(), "gen_device": self.gen.device.type, "torch_rng": torch.get_rng_state()}
        for name in self.stateful:
            obj = getattr(self, name)
            state[name] = obj.state_dict() if hasattr(obj, "state_dict") else obj
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.rows, self.elapsed = state["step"], state["rows"], state["elapsed"]
        self.progress = list(state.get("progress", []))  # a checkpoint from before it kept none
        saved_on = state.get("gen_device", "cpu")  # a checkpoint from before this key was written on the CPU
        if saved_on == self.gen.device.type:
            self.gen.set_state(state["gen"])
        else:  # a CPU and a CUDA generator hold different states: reseed from the saved one, keep the training
            seed = int.from_bytes(hashlib.sha256(state["gen"].numpy().tobytes()).digest()[:7], "little")
            self.gen.manual_seed(seed)
            log.warning("%s: resuming on %s from a checkpoint written on %s: the model, optimiser and rows carry "
                        "over; random draws go on from a new seed derived from the saved generator, so the run "
                        "differs from an uninterrupted one from here on", self.name, self.gen.device.type, saved_on)
        torch.set_rng_state(state["torch_rng"])
        for name in self.stateful:
            obj = getattr(self, name)
            if hasattr(obj, "load_state_dict"):  # modules and optimisers move what they load to their device
                obj.load_state_dict(state[name])
            elif isinstance(obj, torch.nn.Parameter):  # in place: the optimiser holds this very tensor
                with torch.no_grad():
                    obj.copy_(state[name])
            elif isinstance(obj, torch.Tensor):  # a plain tensor goes back where the trainer keeps it
                setattr(self, name, state[name].to(obj.device))
            else:
                setattr(self, name, state[name])

    def warm_up(self) -> None:
        """Work before the first step that a checkpoint holds the result of (e.g. a warm start); its time is
        in the curve's seconds. Nothing by default."""

    def evaluation_due(self) -> bool:
        """Every ``eval_every`` steps, at the last step, and at powers of two before the first
        period, so that curves resolve small budgets (equal-reward-call comparisons need them)."""
        s = self.step
        return s % self.eval_every == 0 or s == self.steps or (s < self.eval_every and s & (s - 1) == 0)

    def run(self, checkpoint: Path | None = None) -> pd.DataFrame:
        """Train to ``steps``, resuming from ``checkpoint`` when it exists; returns the metrics rows."""
        saved = None  # the step the checkpoint on disk holds
        if checkpoint is not None and Path(checkpoint).exists():
            state = io.load_checkpoint(checkpoint, "cpu")  # RNG states must stay on the CPU
            why = None
            if state.get("format") != self.FORMAT:
                why = "another version of the code"
            elif state.get("inputs") != self.inputs:
                why = f"other inputs ({changed_inputs(state.get('input_record'), self.input_record)})"
            if why is None:
                self.load_state_dict(state)
                saved = self.step
                for line in self.progress:
                    log.info("(before the resume) %s", line)
                log.info("%s: resumed from %s at step %d", self.name, checkpoint, self.step)
            else:
                stale = Path(f"{checkpoint}.stale")
                Path(checkpoint).replace(stale)
                log.warning("%s: %s was written for %s; moved to %s, starting afresh", self.name, checkpoint, why,
                            stale)
        if not self.rows:  # a fresh start (a resumed run has its rows, and what ``warm_up`` built, in the checkpoint)
            start = time.perf_counter()
            self.warm_up()
            self.elapsed += time.perf_counter() - start
            self.rows.append(self._evaluate({}, checkpoint))
        while self.step < self.steps:
            start = time.perf_counter()
            try:
                losses = self.train_step()
            except FloatingPointError as err:  # e.g. a rollout from a policy that went NaN
                raise self._failure(checkpoint, self.step + 1, f"non-finite values at step {self.step + 1}: {err}"
                                    ) from err
            self.step += 1
            self.elapsed += time.perf_counter() - start
            if not all(math.isfinite(v) for v in losses.values()):
                raise self._failure(checkpoint, self.step, f"non-finite loss at step {self.step}: {losses}")
            if self.evaluation_due():
                self.rows.append(self._evaluate(losses, checkpoint))
                shown = {k: round(v, 4) for k, v in self.rows[-1].items() if isinstance(v, float)}
                self.progress.append(f"{self.name} step {self.step}/{self.steps} ({self.elapsed:.0f} s, "
                                     f"{self.step / max(self.elapsed, 1e-9):.2f} steps/s) {shown}")
                log.info("%s", self.progress[-1])
            if checkpoint is not None and self.step % self.checkpoint_every == 0:
                io.save_checkpoint(self.state_dict(), checkpoint)
                saved = self.step
                self.on_checkpoint()
        if checkpoint is not None and saved != self.step:
            # the trained state too: a job killed after training (writing its outputs, or before Snakemake has
            # recorded it as done) reruns from here, not from step 0; the workflow removes it once the job's
            # outputs are all written (``io.drop_finished_checkpoints``)
            io.save_checkpoint(self.state_dict(), checkpoint)
            self.on_checkpoint()
        return pd.DataFrame(self.rows)

    def _evaluate(self, losses: dict[str, float], checkpoint: Path | None) -> dict[str, Any]:
        """``evaluate``, stopping like a non-finite loss when its rollouts meet a broken policy."""
        try:
            return self.evaluate(losses)
        except FloatingPointError as err:
            raise self._failure(checkpoint, self.step, f"non-finite values in the evaluation at step {self.step}: "
                                f"{err}") from err

    def _failure(self, checkpoint: Path | None, step: int, what: str) -> FloatingPointError:
        """Save the metrics rows written so far beside the checkpoint; the error says where they are."""
        saved = "not saved (no checkpoint path)"
        if checkpoint is not None and self.rows:
            saved = f"{checkpoint}.failed.parquet"
            io.write_parquet(pd.DataFrame(self.rows), saved, failed_step=step)
        last = self.rows[-1] if self.rows else "none yet"
        return FloatingPointError(f"{self.name}: {what}; the last finite metrics ({last}) and all rows before "
                                  f"them are {saved}; the last checkpoint is {checkpoint}")
