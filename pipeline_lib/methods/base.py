"""The method protocol every adaptation algorithm implements, and the bookkeeping they share.

A method is one file: its settings dataclass, the capabilities it needs (``needs``, checked by
``unsupported`` before any job starts), ``train_step``, and optionally a state-only ``policy``.
The base class turns those into the common parts: one curve-row format on every domain (steps,
trajectories, transitions, total and distinct reward calls, modes / top-K / diversity from the
oracle, wall-clock seconds, and where the space is enumerable the exact L1/KL of the policy the
method holds), a policy table, sampling, and checkpointing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from pipeline_lib.core.env import missing
from pipeline_lib.core.exact import terminal_distribution
from pipeline_lib.core.nets import NEG_INF
from pipeline_lib.core.rollout import rollout
from pipeline_lib.core.training import Trainer
from pipeline_lib.ocgfn.sources import CONTROL
from pipeline_lib.runtime import seed_everything
from pipeline_lib.tasks.metrics import distribution_metrics
from pipeline_lib.tasks.task import Task

CURVE_EXACT_STATES = 1 << 14  # spaces up to this size get the exact L1/KL at every curve evaluation


@dataclass
class TrainedSettings:
    """What every trained method has: its budget in steps, its batch, and its evaluation cadence."""

    steps: int = 2000
    batch_size: int = 64
    eval_every: int = 100
    checkpoint_every: int = 500


@dataclass
class NetworkSettings(TrainedSettings):
    """Methods that train a network: optimiser, width, depth and epsilon-uniform exploration."""

    lr: float = 1e-3
    hidden: int = 256
    layers: int = 2
    epsilon: float = 0.05


class Method(Trainer):
    """Subclasses set ``kind``, ``Settings``, ``needs`` (and ``uses_pretrained``) and implement ``train_step``;
    those with a state-only sampler implement ``policy`` (then ``table`` and ``sample`` come for free)."""

    kind: ClassVar[str]
    Settings: ClassVar[type] = TrainedSettings
    needs: ClassVar[tuple[str, ...]] = ()
    uses_pretrained: ClassVar[bool] = False
    # settings that make an entry of this kind its own no-pre-training control, where ``pretrained: control`` cannot
    # (fine-tuning reads a variant's architecture: ``init: random``); the verdict pairs each run with such a twin
    control_settings: ClassVar[dict[str, Any]] = {}
    stateful: tuple[str, ...] = ("oracle", "trajectories", "transitions")

    @classmethod
    def unsupported(cls, env, settings: Any) -> str | None:
        """Why this method cannot run on ``env`` with ``settings`` (None if it can)."""
        return missing(env, cls.needs)

    uses_descriptor: ClassVar[bool] = False  # adapts a descriptor variant (outcomes: descriptor) or its control

    @classmethod
    def load_source(cls, pretrained: str, path: str | None, env, device: torch.device, descriptor: dict | None):
        """What this method adapts, from its entry's ``pretrained:`` and the variant's model file."""
        from pipeline_lib.ocgfn.sources import pretrained_source

        return pretrained_source(pretrained, path, env, device)

    @classmethod
    def uses_data(cls, settings: Any) -> bool:
        """Whether these settings start from the environment's data set (``data=`` in the constructor)."""
        return False

    @classmethod
    def without_weights(cls, settings: Any) -> str | None:
        """Why these settings cannot adapt the no-pre-training control (``'<key>: <reason>'``), which has a
        policy but no flow head and no weights; None if they can."""
        if getattr(settings, "flow", None) == "learned":
            return "flow: learned reads the OC-GFN's flow head, which the control has not; use flow: policy"
        return None

    @classmethod
    def controls_itself(cls, settings: dict[str, Any]) -> bool:
        """Whether ``settings`` (a method entry's, or a run's as a dict) make it this kind's own no-pre-training
        control (``control_settings``)."""
        own = cls.control_settings
        return bool(own) and all(settings.get(k) == v for k, v in own.items())

    def starts_from(self, pretrained: str) -> str:
        """The ``pretrained`` label of this run's rows: the variant (or the control) it adapts, the control too where
        its settings make it one (``controls_itself``). The report pairs each OC-GFN run with its control by it."""
        return CONTROL if self.controls_itself(vars(self.cfg)) else pretrained

    def __init__(self, task: Task, settings: Any, seed: int, device: torch.device,
                 pretrained=None, data: torch.Tensor | None = None) -> None:
        super().__init__()
        reason = self.unsupported(task.env, settings)
        if reason:
            raise ValueError(f"method {self.kind!r} cannot run here: it {reason}")
        if self.uses_pretrained and pretrained is None:
            raise ValueError(f"method {self.kind!r} adapts a goal-reaching source (ocgfn.sources: a pre-trained "
                             f"OC-GFN or the control); none was given")
        if self.uses_data(settings) and (data is None or not len(data)):
            raise ValueError(f"method {self.kind!r} starts from data with these settings; no data set was given")
        self.task, self.env, self.cfg, self.device = task, task.env, settings, device
        self.data = data  # the data set's training split (states), where the settings use it
        self.steps = getattr(settings, "steps", 0)
        self.eval_every = getattr(settings, "eval_every", 1)
        self.checkpoint_every = getattr(settings, "checkpoint_every", 1)
        self.gen = seed_everything(seed, device)
        self.oracle = task.oracle
        self.trajectories = 0
        self.transitions = 0
        self._table: tuple[int, torch.Tensor] | None = None
        self.name = self.kind  # in logs and errors

    # --- what a method may provide ---
    policy = None  # (states, rows, forward mask) -> masked log-probabilities [b, A] of the final sampler

    def table(self) -> torch.Tensor | None:
        """log P_F(a|s) [S, A] of the policy over every state (enumerable spaces), else None. Computed once
        per training step (the curve's last row, the evaluation and sampling share it)."""
        if self.policy is None or not self.task.enumerable:
            return None
        if self._table is None or self._table[0] != self.step:
            states = self.task.graph.states
            with torch.no_grad():
                table = torch.cat([self.policy(part, None, self.env.forward_mask(part))
                                   for part in states.split(65536)])
            self._table = (self.step, table)
        return self._table[1]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` objects from the final sampler (rewards uncounted: evaluation, not search). Where the space
        is enumerable the policy table is sampled, so samples and the exact L1 describe the same policy."""
        table = self.table()
        if table is not None:
            return rollout(self.env, lambda states, rows, mask: table[self.env.index(states)], n,
                           generator=generator).terminals
        if self.policy is None:
            raise NotImplementedError(f"{type(self).__name__} has neither a policy nor its own sample()")
        return rollout(self.env, self.policy, n, generator=generator).terminals

    # --- shared bookkeeping ---
    def exact_metrics(self) -> dict[str, float]:
        """Exact L1 and KL(R/Z || P) of the policy's terminal distribution; NaN where none can be computed."""
        table = self.table()
        if table is None:
            return {"l1": math.nan, "kl": math.nan}
        return distribution_metrics(terminal_distribution(self.task.graph, table).cpu(), self.task.target)

    def count(self, traj) -> None:
        self.trajectories += traj.n
        self.transitions += int(traj.valid.sum())

    def optimise(self, loss: torch.Tensor) -> dict[str, float]:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def on_checkpoint(self) -> None:
        self.oracle.save()

    def evaluate(self, losses: dict[str, float]) -> dict[str, Any]:
        """A curve row. The exact L1/KL needs the policy on every state: at every evaluation on spaces of at
        most CURVE_EXACT_STATES states (the grids), else at the last step only (TF-Bind-8 has 87,381
        states: about 3 s of CPU per table)."""
        due = self.step >= self.steps or not self.task.enumerable or self.env.n_states <= CURVE_EXACT_STATES
        exact = self.exact_metrics() if due else {"l1": math.nan, "kl": math.nan}
        return {"step": self.step, "trajectories": self.trajectories, "transitions": self.transitions,
                **self.oracle.row(), **exact, "seconds": self.elapsed, **losses}


def mixed_table(log_probs: torch.Tensor, mask: torch.Tensor, epsilon: float) -> torch.Tensor:
    """log of (1 - epsilon) P + epsilon U(valid actions): the policy ``rollout`` samples with epsilon mixing."""
    if epsilon == 0:
        return log_probs
    uniform = mask.float() / mask.sum(-1, keepdim=True)
    mixed = (1 - epsilon) * log_probs.exp() + epsilon * uniform
    return torch.where(mask, mixed.clamp(min=1e-30).log(), torch.full_like(mixed, NEG_INF))
