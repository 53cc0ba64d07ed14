"""Reward-free pre-training (method.md 2): a GAFlowNet explorer driven by RND novelty supplies
outcomes and successful trajectories; the OC-GFN learns to reach any outcome with contrastive
(hindsight) training and outcome teleportation."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from pipeline_lib import io
from pipeline_lib.core.env import ENUMERABLE
from pipeline_lib.core.losses import masked_mse, outcome_teleportation
from pipeline_lib.core.nets import (
    RND,
    GFlowNet,
    OutcomeConditionedGFlowNet,
    OutcomeFree,
    masked_log_softmax,
    oc_inputs,
)
from pipeline_lib.core.rollout import Trajectories, rollout
from pipeline_lib.core.training import Trainer, adam, added
from pipeline_lib.core.transitions import TransitionTerms, db_loss, db_rollout, transition_terms
from pipeline_lib.ocgfn.sources import paths_to
from pipeline_lib.runtime import seed_everything


@dataclass
class PretrainConfig:
    """Pre-training settings; every [choice] of method.md is a field so it can be ablated."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    lr_decay: float = 1.0  # final / initial OC-GFN learning rate (cosine); 1 = constant
    hidden: int = 256
    layers: int = 2
    learn_pb: bool = False
    conditioning: str = "concat"  # concat | product | pairs: how the OC-GFN combines state and outcome
    ot: str = "reachable"  # literal | reachable | off
    contrastive: bool = True
    # fraction of the on-policy rollouts' goals drawn by env.random_outcomes (uniform lengths on sequences)
    # instead of the explorer's outcomes, whose lengths pile up at the maximum (method.md 8)
    random_goals: float = 0.0
    relabel_own: bool = False  # hindsight relabelling of the OC-GFN's own rollouts too (y := the object reached)
    # a data prior (envs.NAME.data, beyond the paper): the next ``data_goals`` fraction of the goals drawn from
    # the data set's training split, and (data_positives) a batch of paths to data objects in the contrastive set
    data_goals: float = added(0.0)
    data_positives: bool = added(False)
    # outcomes: objects (y is the object itself, the paper) | descriptor (y = phi(x), envs.NAME.descriptor, beyond
    # the paper: ocgfn/descriptor.py); descriptor_samples: conditioned samples per outcome at each evaluation;
    outcomes: str = added("objects")
    descriptor_samples: int = added(8)
    # descriptor_loss: classifier (the flows on a tree as classifiers of uniformly drawn objects) | tb (the
    # balance loss with the explorer, any DAG); z_lr: the learning rate of tb's log Z(y) table
    descriptor_loss: str = added("classifier")
    # descriptor_boundary (classifier): learned | exact, the policy's last decision from the classifier or from
    # phi itself (descriptor.exact_boundary); state_descriptor (classifier): the classifier also reads phi of
    # each state (Descriptor.state_features). Their defaults are the behaviour before they existed.
    descriptor_boundary: str = added("learned")
    state_descriptor: bool = added(False)
    z_lr: float = added(0.05)
    log_eps_fail: float = -10.0
    negative_epsilon: float = 0.0
    explorer_lr: float = 1e-3
    # the explorer (and RND) roll out and update once every ``explorer_every`` steps, on that many batches at once,
    # and the OC-GFN takes one batch of them per step: a rollout of small batches is a chain of small operations,
    # so one large batch costs less per trajectory (beyond the paper; benchmarks/throughput.py measures it)
    explorer_every: int = added(1)
    explorer_epsilon: float = 0.05
    rnd_eta: float = 0.005
    rnd_hidden: int = 256
    rnd_dim: int = 128
    rnd_lr: float = 1e-3
    base_reward: float = 1e-8
    eval_every: int = 250
    eval_outcomes: int = 4096
    checkpoint_every: int = 250
    # algorithm: ocgfn (the method) | gcrl, the goal-conditioned RL baseline (ocgfn/gcrl.py): a double DQN on
    # the same network, goals from the same explorer, hindsight relabelling; the fields below are its own
    algorithm: str = "ocgfn"
    her: str = "final+future"  # none | final | future | final+future: the relabelled goals added per transition
    gamma: float = 0.99
    temperature: float = 0.05  # its Boltzmann policy softmax(Q / temperature), in rollouts and in adaptation
    target_every: int = 50  # steps between target-network copies
    replay_size: int = 100_000  # transitions kept
    replay_batch: int = 512  # transitions per update

    @property
    def uses_data(self) -> bool:
        """Whether this variant draws on the environment's data set (goals or positives)."""
        return self.data_goals > 0 or self.data_positives


class OCGFNPolicy:
    """Callable views of an OC-GFN conditioned on a fixed batch of outcomes (of the model as it is: build a
    new view after each update)."""

    def __init__(self, env, model: OutcomeConditionedGFlowNet, outcomes: torch.Tensor,
                 outcome_feats: torch.Tensor | None = None) -> None:
        """``outcome_feats``: the outcomes' input features where outcomes are not states (descriptor bins)."""
        self.env, self.model, self.outcomes = env, model, outcomes
        self.outcome_feats = env.featurize(outcomes) if outcome_feats is None else outcome_feats
        self._frozen: tuple[torch.Tensor, torch.Tensor] | None = None

    def flows(self, states: torch.Tensor, rows: torch.Tensor, at: torch.Tensor | None = None):
        """The model's outputs for states conditioned on ``outcomes[rows]``: each outcome's share is computed
        once per call (a stacked pass over trajectories), or once per view without autograd (a rollout). With
        ``at``, output i is of state ``states[at[i]]``, and each state's share is computed once."""
        env, model = self.env, self.model
        if not isinstance(model, OutcomeConditionedGFlowNet):  # any callable with the OC-GFN's inputs
            states = states if at is None else states[at]
            return model(*oc_inputs(env, model, states, self.outcomes[rows], self.outcome_feats[rows]))
        if torch.is_grad_enabled():
            part = model.outcome_part(self.outcome_feats)
        else:
            if self._frozen is None:
                self._frozen = model.outcome_part(self.outcome_feats)
            part = self._frozen
        feats, _, initial, *pairs = oc_inputs(env, model, states, self.outcomes, self.outcome_feats, rows, at)
        return model.conditioned(feats, part, initial, *pairs, rows=rows, at=at)

    def __call__(self, states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _, logits, _ = self.flows(states, rows)
        return masked_log_softmax(logits, mask)


def ocgfn_loss(env, terms: TransitionTerms, terminals: torch.Tensor, outcomes: torch.Tensor,
               cfg: PretrainConfig, sets: int = 1) -> torch.Tensor:
    """Mean squared OT residual over the transitions of trajectories (ending at ``terminals``)
    conditioned on ``outcomes``, from their OC-GFN ``terms``. With ``sets`` > 1 the batch holds that
    many equal sets of trajectories one after another (the on-policy and the explorer's): the loss is
    the mean of the per-set means, so each set weighs the same whatever its number of transitions."""
    y = outcomes[terms.b]
    success = env.same(terminals, outcomes)[terms.b]
    reach = env.can_reach(terms.state, y)
    # s' of a move is the state of the same trajectory's next transition (every trajectory ends with a stop),
    # so one reachability test per transition serves both ends (prepend-or-append: a substring search)
    pos = torch.zeros(int(terms.t.max()) + 2, len(terminals), dtype=torch.long, device=terms.t.device)
    pos[terms.t, terms.b] = torch.arange(len(terms.t), device=terms.t.device)
    reach_next = torch.where(terms.is_stop, success, reach[pos[terms.t + 1, terms.b]])
    residual, mask = outcome_teleportation(terms.log_f, terms.log_pf, terms.log_f_next, terms.log_pb,
                                           terms.is_stop, success, reach, reach_next, cfg.ot, cfg.log_eps_fail)
    which = terms.b // (len(outcomes) // sets)
    return sum(masked_mse(residual[which == k], None if mask is None else mask[which == k])
               for k in range(sets)) / sets


def loss_sets(cfg: PretrainConfig, goals: torch.Tensor, rollouts: Trajectories, outcomes: torch.Tensor,
              positives: Trajectories, reached: torch.Tensor) -> tuple[list[torch.Tensor], list[Trajectories]]:
    """The (outcomes, trajectories) sets of one OC-GFN update: the on-policy rollouts towards their goals, the
    explorer's trajectories relabelled with their own outcomes (``contrastive``), and the rollouts again
    towards what they ``reached`` (``relabel_own``)."""
    sets, trajectories = [goals], [rollouts]
    if cfg.contrastive:
        sets.append(outcomes)
        trajectories.append(positives)
    if cfg.relabel_own:
        sets.append(reached)
        trajectories.append(rollouts)
    return sets, trajectories


@torch.no_grad()
def reached(env, model: OutcomeConditionedGFlowNet, outcomes: torch.Tensor, greedy: bool,
            generator: torch.Generator | None, chunk: int = 4096) -> torch.Tensor:
    """Bool [Y]: whether the y-conditioned sampler (unmasked by any reachability test) ends exactly at y."""
    hits = []
    for lo in range(0, len(outcomes), chunk):
        y = outcomes[lo:lo + chunk]
        traj = rollout(env, OCGFNPolicy(env, model, y), len(y), greedy=greedy, generator=generator)
        hits.append(env.same(traj.terminals, y))
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)


def success_rate(env, model: OutcomeConditionedGFlowNet, outcomes: torch.Tensor, greedy: bool,
                 generator: torch.Generator | None, chunk: int = 4096) -> float:
    """Fraction of outcomes y for which the y-conditioned sampler ends exactly at y (method.md 2.4)."""
    return reached(env, model, outcomes, greedy, generator, chunk).float().mean().item()


MAX_BANDS = 5


def level_bands(max_level: int, min_level: int = 0) -> list[tuple[int, int]]:
    """At most MAX_BANDS contiguous (low, high) level ranges covering [min_level, max_level], as equal as
    integers allow (one band per level where there are few levels)."""
    levels = list(range(min_level, max_level + 1))
    n = min(MAX_BANDS, len(levels))
    cuts = [round(i * len(levels) / n) for i in range(n + 1)]
    return [(levels[cuts[i]], levels[cuts[i + 1] - 1]) for i in range(n)]


def evaluation_outcomes(env, n: int, generator: torch.Generator) -> torch.Tensor:
    """All outcomes when the space is small enough, else ``n`` drawn uniformly with the generator."""
    if env.capabilities()[ENUMERABLE] is not None:
        return env.random_outcomes(n, generator)
    states = env.terminal_states()
    if len(states) <= n:
        return states
    return states[torch.randperm(len(states), generator=generator, device=states.device)[:n]]


class Pretrainer(Trainer):
    """Holds the explorer, RND and OC-GFN with their optimisers; checkpointable and resumable."""

    name = "pretrain"
    stateful = ("model", "explorer", "rnd", "opt", "explorer_opt", "rnd_opt", "seen", "transitions",
                "explorer_levels", "goal_levels", "band_rows", "explored")

    def __init__(self, env, cfg: PretrainConfig, seed: int, device: torch.device,
                 data: torch.Tensor | None = None, holdout: torch.Tensor | None = None) -> None:
        super().__init__()
        if not 0.0 <= cfg.random_goals + cfg.data_goals <= 1.0 or cfg.data_goals < 0:
            raise ValueError(f"random_goals + data_goals: expected fractions summing to at most 1, got "
                             f"{cfg.random_goals} + {cfg.data_goals}")
        if cfg.explorer_every < 1:
            raise ValueError(f"explorer_every: expected a whole number of steps >= 1, got {cfg.explorer_every}")
        if cfg.uses_data and (data is None or not len(data)):
            raise ValueError("data_goals / data_positives: pre-training draws on a data set, but none was given")
        # held-out real objects, as many as the evaluation outcomes (datasets.prepare wrote them in a random order)
        self.data, self.holdout = data, None if holdout is None else holdout[:cfg.eval_outcomes]
        self.steps, self.eval_every, self.checkpoint_every = cfg.steps, cfg.eval_every, cfg.checkpoint_every
        self.env, self.cfg, self.seed, self.device = env, cfg, seed, device
        self.gen = seed_everything(seed, device)
        f, a, nb = env.feature_dim, env.n_actions, env.n_backward_actions
        self.model = OutcomeConditionedGFlowNet(f, a, nb, cfg.hidden, cfg.layers, cfg.learn_pb, cfg.conditioning,
                                                pair_dim(env, cfg.conditioning), **self.outcome_arch()).to(device)
        self.explorer = GFlowNet(f, a, nb, cfg.hidden, cfg.layers, cfg.learn_pb).to(device)
        self.rnd = RND(f, cfg.rnd_hidden, cfg.rnd_dim).to(device)
        self.opt = adam(self.model.parameters(), lr=cfg.lr)
        self.explorer_opt = adam(self.explorer.parameters(), lr=cfg.explorer_lr)
        self.rnd_opt = adam(self.rnd.predictor.parameters(), lr=cfg.rnd_lr)
        enumerable = env.capabilities()[ENUMERABLE] is None
        self.seen = torch.zeros(env.n_states if enumerable else 0, dtype=torch.bool, device=device)
        # the coverage is over outcomes (terminal objects), which on sequences are a fraction of the states
        self.n_outcomes = len(env.terminal_states()) if enumerable else 0
        self.transitions = 0
        self.explored = Explored(device)
        self.eval_outcomes = evaluation_outcomes(env, cfg.eval_outcomes, torch.Generator(device).manual_seed(seed))
        # how many explorer outcomes / on-policy goals had each level, against the evaluation outcomes
        self.explorer_levels = torch.zeros(env.max_length + 1, dtype=torch.long, device=device)
        self.goal_levels = torch.zeros_like(self.explorer_levels)
        self.eval_levels = env.level(self.eval_outcomes)
        self.bands = level_bands(int(self.eval_levels.max()), int(self.eval_levels.min()))
        self.band_rows: list[dict[str, Any]] = []
        self.phases: dict[str, float] = {}  # seconds per phase of the steps so far (this process only)
        self.sync_phases = False  # CUDA: synchronise at each phase (benchmarks), else phases count launches

    def outcome_arch(self) -> dict[str, Any]:
        """The OC-GFN's outcome input where outcomes are not states (ocgfn/descriptor.py); none here."""
        return {}

    def _phase(self, name: str, since: float) -> float:
        """Add the time since ``since`` to phase ``name``; returns now. Where a step's time goes is what
        benchmarks/throughput.py prints; training jobs do not pay a CUDA sync per phase."""
        if self.sync_phases and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - since
        return now

    def train_step(self) -> dict[str, float]:
        """One iteration of method.md 2.2: explore, relabel, roll out on-policy, update both."""
        positives, explorer_losses = self.explore()
        return {**self.learn(positives), **explorer_losses}

    def explore(self) -> tuple[Trajectories, dict[str, float]]:
        """The explorer's trajectories (their terminals are the outcomes to learn): one batch of those it drew
        at its last update, which it makes every ``explorer_every`` steps on that many batches."""
        if not self.explored.left():
            self.explored.fill(*self.explore_batch(self.cfg.batch_size * self.cfg.explorer_every))
        return self.explored.take(self.cfg.batch_size), self.explored.losses

    def explore_batch(self, n: int) -> tuple[Trajectories, dict[str, float]]:
        """``n`` trajectories of the GAFlowNet explorer, after one update of it on their RND novelty and one
        of RND."""
        env, cfg = self.env, self.cfg
        t = time.perf_counter()
        positives, explorer_terms = db_rollout(env, self.explorer, n, cfg.explorer_epsilon, self.gen)
        t = self._phase("explorer rollout", t)
        feats = env.featurize(positives.terminals)
        novelty = self.rnd(feats)
        log_r = torch.log(cfg.base_reward + cfg.rnd_eta * novelty.detach())
        explorer_loss = db_loss(explorer_terms, log_r)
        self.explorer_opt.zero_grad()
        explorer_loss.backward()
        self.explorer_opt.step()
        t = self._phase("explorer update", t)
        rnd_loss = novelty.pow(2).mean()
        self.rnd_opt.zero_grad()
        rnd_loss.backward()
        self.rnd_opt.step()
        t = self._phase("RND update", t)
        if len(self.seen):
            self.seen[env.index(positives.terminals)] = True
        self.explorer_levels += torch.bincount(env.level(positives.terminals), minlength=len(self.explorer_levels))
        return positives, {"explorer_loss": explorer_loss.item(), "rnd_loss": rnd_loss.item()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A checkpoint from before ``explorer_every`` has no explorer trajectories waiting, which is what
        it meant."""
        super().load_state_dict({"explored": Explored(self.device).state_dict(), **state})

    def learn(self, positives: Trajectories) -> dict[str, float]:
        """One OC-GFN update: on-policy rollouts towards the explorer's outcomes, and the explorer's own
        trajectories relabelled with them (contrastive), under outcome teleportation."""
        env, cfg = self.env, self.cfg
        self._schedule_lr()
        outcomes = positives.terminals  # hindsight relabelling: y := x(tau+)
        goals = self.goals(outcomes)
        # Sampling runs without autograd; the loss then takes one forward pass over the states of every
        # set (contrastive: the explorer's trajectories too; relabel_own: the rollouts again, towards what
        # they reached), which at the small batches pre-training uses costs less than keeping a graph per
        # rollout step (benchmarks/throughput.py measures it).
        t = time.perf_counter()
        negatives = rollout(env, OCGFNPolicy(env, self.model, goals), len(goals), cfg.negative_epsilon,
                            generator=self.gen)
        t = self._phase("OC-GFN rollout", t)
        sets, trajectories = loss_sets(cfg, goals, negatives, outcomes, positives, negatives.terminals)
        if cfg.data_positives:  # paths to real objects (on a tree, each object's one path)
            known = self.draw_data(cfg.batch_size)
            sets.append(known)
            trajectories.append(paths_to(env, known, self.gen))
        y = torch.cat(sets)
        batch = Trajectories.concat(trajectories)
        terms = transition_terms(env, batch, OCGFNPolicy(env, self.model, y).flows, y)
        t = self._phase("OC-GFN forward", t)
        loss = ocgfn_loss(env, terms, batch.terminals, y, cfg, sets=len(sets))
        t = self._phase("OT loss", t)
        self.opt.zero_grad()
        loss.backward()
        t = self._phase("OC-GFN backward", t)
        self.opt.step()
        self._phase("OC-GFN optimiser", t)
        self.transitions += int(positives.valid.sum() + negatives.valid.sum())
        return {"oc_loss": loss.item(), "neg_success": env.same(negatives.terminals, goals).float().mean().item()}

    def goals(self, outcomes: torch.Tensor) -> torch.Tensor:
        """The goals of this step's on-policy rollouts: the explorer's outcomes, the first ``random_goals``
        fraction replaced by env.random_outcomes and the next ``data_goals`` by data objects (drawn with the
        trainer's generator); their levels are counted for the length report."""
        k = round(self.cfg.random_goals * len(outcomes))
        d = min(round(self.cfg.data_goals * len(outcomes)), len(outcomes) - k)  # equal-sized sets in the loss
        parts = [self.env.random_outcomes(k, self.gen)] if k else []
        if d:
            parts.append(self.draw_data(d))
        goals = torch.cat([*parts, outcomes[k + d:]]) if parts else outcomes
        self.goal_levels += torch.bincount(self.env.level(goals), minlength=len(self.goal_levels))
        return goals

    def draw_data(self, n: int) -> torch.Tensor:
        """``n`` objects of the data set's training split, uniformly with replacement (the trainer's generator)."""
        return self.data[torch.randint(len(self.data), (n,), generator=self.gen, device=self.device)]

    def _schedule_lr(self) -> None:
        """Cosine decay of the OC-GFN learning rate to ``lr * lr_decay`` over ``cfg.steps``: with a
        constant rate the late updates keep knocking a converged success rate down by several points.
        A function of the step alone, so a resumed run follows the same schedule."""
        if self.cfg.lr_decay == 1.0:
            return
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(self.step / self.cfg.steps, 1.0)))
        for group in self.opt.param_groups:
            group["lr"] = self.cfg.lr * (self.cfg.lr_decay + (1.0 - self.cfg.lr_decay) * cosine)

    def eval_generator(self) -> torch.Generator:
        """Evaluation draws its own numbers, so how often one evaluates never changes training."""
        return torch.Generator(self.device).manual_seed(self.seed * 1_000_003 + self.step)

    def sampler(self) -> torch.nn.Module:
        """What the success rate rolls out (outputs as the OC-GFN's: log F, P_F logits, P_B logits)."""
        return self.model

    def evaluate(self, losses: dict[str, float]) -> dict[str, Any]:
        """A metrics row: success rate (greedy and sampled) of the unmasked policy on the evaluation
        outcomes; per level band, the same and the share of explorer outcomes and goals in the band
        (``band_rows``)."""
        self.model.eval()
        greedy = reached(self.env, self.sampler(), self.eval_outcomes, True, None)
        sampled = reached(self.env, self.sampler(), self.eval_outcomes, False, self.eval_generator())
        row = {"step": self.step, "trajectories": 2 * self.step * self.cfg.batch_size,
               "transitions": self.transitions,
               "success_greedy": greedy.float().mean().item(), "success_sample": sampled.float().mean().item(),
               "explorer_coverage": int(self.seen.sum()) / self.n_outcomes if len(self.seen) else math.nan,
               "seconds": self.elapsed, **losses}
        if self.holdout is not None:  # real objects no job trains on: does pre-training reach unseen data?
            for name, greedy_, gen in (("greedy", True, None), ("sample", False, self.eval_generator())):
                hit = reached(self.env, self.sampler(), self.holdout, greedy_, gen)
                row[f"holdout_success_{name}"] = hit.float().mean().item()
        self.model.train()
        levels = torch.arange(len(self.explorer_levels), device=self.device)
        for low, high in self.bands:
            in_band = (self.eval_levels >= low) & (self.eval_levels <= high)
            share = (levels >= low) & (levels <= high)
            self.band_rows.append({
                "step": self.step, "band": f"{low}" if low == high else f"{low}-{high}", "level_low": low,
                "level_high": high, "eval_outcomes": int(in_band.sum()),
                "eval_fraction": in_band.float().mean().item(),
                "explorer_fraction": _share(self.explorer_levels, share),
                "goal_fraction": _share(self.goal_levels, share),
                "success_greedy": greedy[in_band].float().mean().item() if in_band.any() else math.nan,
                "success_sample": sampled[in_band].float().mean().item() if in_band.any() else math.nan})
        return row

    def band_table(self):
        """The per-band rows of every evaluation (pre-training's ``bands.parquet``)."""
        import pandas as pd

        return pd.DataFrame(self.band_rows)


class Explored:
    """The explorer's trajectories not yet handed to the OC-GFN, and the losses of the update that drew
    them; checkpointed, so a resumed run hands out the same batches."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.batch, self.next = device, None, 0
        self.losses: dict[str, float] = {}

    def left(self) -> int:
        return 0 if self.batch is None else self.batch.n - self.next

    def fill(self, batch: Trajectories, losses: dict[str, float]) -> None:
        self.batch, self.next, self.losses = batch, 0, losses

    def take(self, n: int) -> Trajectories:
        if self.left() < n:
            raise ValueError(f"Explored.take({n}): only {self.left()} explorer trajectories left")
        self.next += n
        if self.next == n and self.left() == 0:  # the whole batch (explorer_every = 1): as drawn
            return self.batch
        return self.batch.columns(self.next - n, self.next)

    def state_dict(self) -> dict[str, Any]:
        batch = None if self.batch is None else (self.batch.states, self.batch.actions, self.batch.valid,
                                                 self.batch.terminals)
        return {"batch": batch, "next": self.next, "losses": self.losses}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        batch = state["batch"]
        self.batch = None if batch is None else Trajectories(*(x.to(self.device) for x in batch))
        self.next, self.losses = state["next"], state["losses"]


def _share(counts: torch.Tensor, where: torch.Tensor) -> float:
    total = int(counts.sum())
    return int(counts[where].sum()) / total if total else math.nan


def load_pretrained(path: str, env, device: torch.device) -> tuple[OutcomeConditionedGFlowNet, dict[str, Any]]:
    """Rebuild a pre-trained OC-GFN (or the GCRL baseline's Q network, the same class) from the pre-training
    job's model file, in eval mode, with the settings it was trained with."""
    saved = io.load_checkpoint(path, device)
    cfg = saved["config"]
    if cfg.get("outcomes", "objects") == "descriptor":
        raise ValueError(f"{path}: a descriptor OC-GFN (outcomes: descriptor) is adapted by outcome_conversion or "
                         f"outcome_search, not by methods that condition on objects")
    conditioning = cfg.get("conditioning", "concat")
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, cfg["hidden"],
                                       cfg["layers"], cfg["learn_pb"], conditioning,
                                       pair_dim(env, conditioning)).to(device)
    model.load_state_dict(saved["state_dict"])
    return model.eval(), cfg


def outcome_free(env, model: OutcomeConditionedGFlowNet, n_outcomes: int, generator: torch.Generator,
                 random_init: bool = False) -> OutcomeFree:
    """An unconditional GFlowNet made of ``model``'s networks (copies), its outcome input the mean embedding
    of ``n_outcomes`` outcomes; ``random_init``: the same architecture freshly initialised (the control)."""
    if not isinstance(model, OutcomeConditionedGFlowNet):
        raise ValueError(f"expected a pre-trained OC-GFN's weights, got {type(model).__name__}, which has none")
    device = next(model.parameters()).device
    if random_init:
        model = OutcomeConditionedGFlowNet(**model.arch).to(device)
    outcomes = evaluation_outcomes(env, n_outcomes, generator)
    with torch.no_grad():
        mean = model.embed_outcome(env.featurize(outcomes)).mean(0)
        pair = None
        if model.embed_pair is not None:  # the mean pair embedding at s0, where every outcome is still reachable
            pair = model.embed_pair(env.pair_features(env.initial_states(len(outcomes)), outcomes)).mean(0)
    return OutcomeFree(model, mean, pair).to(device)


def pair_dim(env, conditioning: str) -> int:
    """The pair-feature width an OC-GFN with ``conditioning`` takes on ``env`` (0 unless 'pairs')."""
    if conditioning != "pairs":
        return 0
    if not hasattr(env, "pair_features"):
        raise ValueError(f"conditioning 'pairs' needs the environment's pair_features(states, outcomes); "
                         f"{type(env).__name__} has none")
    return env.pair_dim
