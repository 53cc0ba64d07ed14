"""Pre-training on descriptor outcomes, y = phi(x) (beyond the paper; ``pipeline_lib.descriptors``).

R(x|y) = 1[phi(x) = y]: many objects share y, so F(s0|y) = sum_x R(x|y) is no longer 1 but the number of
objects with that descriptor, which pre-training learns. No reachability test exists (whether a partial
molecule can still end with QED in [0.5, 0.7) is the search problem itself), so outcome teleportation has
nothing to teleport. Two ways to learn it (``descriptor_loss``):
- ``classifier`` (trees): F(s|y) = C(s) P_U(y | s), C(s) the number of objects below s (closed form,
  ``env.log_completions``) and P_U the outcome distribution of an object drawn uniformly below s. Objects drawn
  uniformly need no explorer on a tree; every state of their trajectories is a classification example
  (``OutcomeClassifier``); P_F(a | s, y) is proportional to F(s.a | y) (``ClassifierPolicy``).
- ``tb`` (any DAG): the explorer (GAFlowNet with RND) and the contrastive set of object outcomes, with outcomes
  phi of the explorer's terminals; trajectory balance per (trajectory, outcome) with R = 1 on a hit and eps on
  a miss; log Z(y) a table over the finite Y with its own learning rate (``z_lr``), started at a bound on
  log |X|. eps must be negligible against every count, or log Z(y) learns eps x |X|: the failure log-reward
  is ``log_eps_fail`` minus that bound. ``random_goals`` draws goals uniformly among the outcomes seen so far.

Either model is exposed to adaptation as a ``DescriptorModel`` (objects with a given descriptor; log-counts),
beside the no-pre-training control ``RejectionControl`` (random objects grouped by descriptor).
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline_lib import io
from pipeline_lib.core.env import TREE, missing
from pipeline_lib.core.losses import trajectory_balance
from pipeline_lib.core.nets import NEG_INF, OutcomeConditionedGFlowNet, masked_log_softmax, mlp
from pipeline_lib.core.rollout import Trajectories, rollout
from pipeline_lib.core.training import Trainer, adam
from pipeline_lib.core.transitions import TransitionTerms, transition_terms
from pipeline_lib.descriptors import Descriptor, make_descriptor
from pipeline_lib.ocgfn.pretrain import OCGFNPolicy, PretrainConfig, Pretrainer, loss_sets
from pipeline_lib.runtime import seed_everything

OUTCOMES = ("objects", "descriptor")
DESCRIPTOR_LOSSES = ("classifier", "tb")
BOUNDARIES = ("exact", "learned")


def log_size_bound(env) -> float:
    """A bound on log |X|: every object is a trajectory of at most ``max_length`` actions."""
    return env.max_length * math.log(env.n_actions)


def failure_log_reward(env, cfg: PretrainConfig) -> float:
    """log eps of a miss: ``log_eps_fail`` below the bound on log |X| (the module docstring says why)."""
    return cfg.log_eps_fail - log_size_bound(env)


def descriptor_tb_loss(terms: TransitionTerms, log_z: torch.Tensor, hit: torch.Tensor, log_eps: float,
                       sets: int = 1) -> torch.Tensor:
    """Mean squared TB residual log Z(y) + sum log P_F - log R(x|y) - sum log P_B per trajectory (``log_z``:
    each trajectory's outcome's learned log-count); with ``sets`` equal sets in the batch, the mean of the
    per-set means (as ``ocgfn_loss``)."""
    n = len(hit)
    zeros = torch.zeros(n, dtype=terms.log_pf.dtype, device=terms.log_pf.device)
    pf, pb = zeros.index_add(0, terms.b, terms.log_pf), zeros.index_add(0, terms.b, terms.log_pb)
    residual = trajectory_balance(log_z, pf, pb, torch.where(hit, zeros, zeros + log_eps)).pow(2)
    per = n // sets
    return sum(residual[k * per:(k + 1) * per].mean() for k in range(sets)) / sets


class DescriptorModel:
    """A pre-trained descriptor OC-GFN as adaptation reads it: which outcomes pre-training met (``known``),
    their learned log-counts log F(s0|y), and objects sampled with a given descriptor."""

    def __init__(self, env, model: OutcomeConditionedGFlowNet, descriptor: Descriptor, log_z: torch.Tensor,
                 counts: torch.Tensor) -> None:
        self.env, self.model, self.descriptor = env, model, descriptor
        self.log_z, self.counts = log_z, counts

    def known(self) -> torch.Tensor:
        """Bool [|Y|]: outcomes the explorer produced during pre-training (others may hold no object)."""
        return self.counts > 0

    def policy(self, y: torch.Tensor) -> OCGFNPolicy:
        return OCGFNPolicy(self.env, self.model, y, self.descriptor.one_hot(y))

    @torch.no_grad()
    def log_counts(self, y: torch.Tensor) -> torch.Tensor:
        """log F(s0|y), the learned log-number of objects with descriptor y."""
        return self.log_z.detach()[self.descriptor.index(y)]

    @torch.no_grad()
    def draw(self, y: torch.Tensor, generator: torch.Generator | None, greedy: bool = False) -> torch.Tensor:
        """One object per row of ``y`` from P_F(.|y) (unmasked: it may miss y)."""
        return rollout(self.env, self.policy(y), len(y), greedy=greedy, generator=generator).terminals

    def sample(self, y: torch.Tensor, generator: torch.Generator | None, tries: int = 1
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Objects with descriptors ``y`` and whether each has it: a miss is drawn again, up to ``tries``
        draws (phi costs no reward call), so what a hit follows is P(x | y, hit)."""
        return _retry(self.draw, self.descriptor, y, generator, tries)


class RejectionControl:
    """The no-pre-training control: one seeded pool of ``pool`` objects from ``env.random_outcomes``, grouped by
    descriptor; an object with descriptor y is drawn uniformly from the pool's objects with y. The outcomes'
    log-counts are estimated as their share of the pool times |X| (its bound). No training and no weights;
    an outcome the pool lacks, it cannot propose."""

    def __init__(self, env, descriptor: Descriptor, pool: int, generator: torch.Generator) -> None:
        self.env, self.descriptor, self.pool = env, descriptor, pool
        x = env.random_outcomes(pool, generator)
        idx = descriptor.index(descriptor.outcomes(x))
        order = idx.argsort(stable=True)
        self.objects = x[order]
        self.counts = torch.bincount(idx, minlength=descriptor.size)
        self.start = self.counts.cumsum(0) - self.counts

    def known(self) -> torch.Tensor:
        return self.counts > 0

    def log_counts(self, y: torch.Tensor) -> torch.Tensor:
        share = self.counts[self.descriptor.index(y)].float() / self.pool
        return share.log() + log_size_bound(self.env)

    def draw(self, y: torch.Tensor, generator: torch.Generator | None, greedy: bool = False) -> torch.Tensor:
        """One pooled object per row of ``y`` with that descriptor (an arbitrary one where the pool has none)."""
        i = self.descriptor.index(y)
        u = torch.rand(len(y), generator=generator, device=y.device)
        pick = self.start[i] + (u * self.counts[i]).long().clamp(max=(self.counts[i] - 1).clamp(min=0))
        return self.objects[pick.clamp(max=len(self.objects) - 1)]

    def sample(self, y: torch.Tensor, generator: torch.Generator | None, tries: int = 1
               ) -> tuple[torch.Tensor, torch.Tensor]:
        return _retry(self.draw, self.descriptor, y, generator, tries)


def valid_moves(env, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every valid move but stop: its row, its action and the child it leads to."""
    rows, acts = (mask & (torch.arange(mask.shape[1], device=mask.device) != env.stop)).nonzero(as_tuple=True)
    return rows, acts, env.step(states[rows], acts)


def uniform_logits(env, states: torch.Tensor, mask: torch.Tensor | None = None,
                   moves: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """P_F logits [B, A] of the policy uniform over objects on a tree: log C(child) per move, 0 (one object)
    for stop, NEG_INF where invalid; softmax gives each action the share of objects it leads to. ``mask`` and
    ``moves`` (``valid_moves``): the states' forward mask and children, where the caller has them."""
    mask = env.forward_mask(states) if mask is None else mask
    rows, acts, children = valid_moves(env, states, mask) if moves is None else moves
    logits = torch.full(mask.shape, NEG_INF, device=states.device)
    logits[rows, acts] = env.log_completions(children)
    logits[:, env.stop] = torch.where(mask[:, env.stop], 0.0, NEG_INF)
    return logits


class OutcomeClassifier(torch.nn.Module):
    """The flows of the descriptor OC-GFN on a tree, as classifiers over Y of a state's features: for each move
    a, where an object drawn uniformly below the child s.a lands (``completion`` [B, A, Y]: log P_U(y | s.a),
    so F(s.a|y) = C(s.a) P_U(y | s.a); one pass per state, not one per child), and the state's own descriptor
    where it may stop (``here`` [B, Y]: log P(phi(s) = y)). With ``descriptor`` it also reads phi of the state
    itself (``Descriptor.state_features``): a flat network on tokens cannot compute RDKit's QED of a SELFIES
    string, and the descriptor of the part built so far is the best single clue to the whole's."""

    def __init__(self, feature_dim: int, n_actions: int, size: int, hidden: int, layers: int,
                 descriptor: Descriptor | None = None) -> None:
        super().__init__()
        self.n_actions, self.size, self.descriptor = n_actions, size, descriptor
        extra = 0 if descriptor is None else descriptor.feature_width
        self.net = mlp(feature_dim + extra, hidden, layers, (n_actions + 1) * size)

    def read(self, env, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` on the states' inputs: their features, and phi of each where the model reads it."""
        feats = env.featurize(states)
        if self.descriptor is not None:
            feats = torch.cat([feats, self.descriptor.state_features(states)], -1)
        return self(feats)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(feats).view(len(feats), self.n_actions + 1, self.size)
        return torch.log_softmax(out[:, :-1], -1), torch.log_softmax(out[:, -1], -1)


class ClassifierPolicy:
    """P_F(a | s, y) proportional to F(s.a|y) = C(s.a) P_U(y | s.a) for a move, P(phi(s) = y) for stop: the
    OC-GFN on a tree read off its flows (``OutcomeClassifier``), with the exact boundary where ``exact``
    (``exact_boundary``); rows as ``rollout`` passes them."""

    def __init__(self, env, model: OutcomeClassifier, descriptor: Descriptor, outcomes: torch.Tensor,
                 exact: bool = False) -> None:
        self.env, self.model, self.y = env, model, descriptor.index(outcomes)
        self.descriptor = descriptor if exact else None

    def __call__(self, states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # flow_logits are NEG_INF on invalid actions already: a plain log-softmax is the masked one
        return torch.log_softmax(flow_logits(self.env, self.model, states, self.y[rows], self.descriptor), -1)


def flow_logits(env, model: OutcomeClassifier, states: torch.Tensor, y: torch.Tensor,
                descriptor: Descriptor | None = None) -> torch.Tensor:
    """log F(s.a | y) per action [B, A] (stop: log P(phi(s) = y)), NEG_INF where invalid; with ``descriptor``,
    exact at a trajectory's last decision (``exact_boundary``)."""
    mask = env.forward_mask(states)
    moves = valid_moves(env, states, mask)
    completion, here = model.read(env, states)
    picked = completion.gather(2, y[:, None, None].expand(-1, completion.shape[1], 1))[:, :, 0]
    logits = (uniform_logits(env, states, mask, moves) + picked).masked_fill(~mask, NEG_INF)
    logits[:, env.stop] = torch.where(mask[:, env.stop], here.gather(1, y[:, None])[:, 0], NEG_INF)
    return logits if descriptor is None else exact_boundary(env, descriptor, states, y, mask, moves, logits)


def exact_boundary(env, descriptor: Descriptor, states: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
                   moves: tuple[torch.Tensor, torch.Tensor, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
    """The boundary condition F(x|y) = R(x|y) = 1[phi(x) = y] in place of the classifier where a move's child
    is an object and nothing else (its only move is stop), and for the stop of a state with such a child:
    this last decision is where a tree settles the outcome, and phi answers it exactly with no reward call
    (as the object OC-GFN's final flow is its outcome reward). Earlier stops keep the learned head: exact ones
    would cost one phi per state per step (about a millisecond per molecule) for a move the counts C(s.a)
    almost never let win. A row where no exact option has y keeps its learned logits (its best miss).
    ``moves``: the states' valid moves and children (``valid_moves``)."""
    rows, acts, children = moves
    if not len(rows):
        return logits
    child_mask = env.forward_mask(children)
    last = child_mask[:, env.stop] & (child_mask.sum(1) == 1)
    rows, acts, children = rows[last], acts[last], children[last]
    if not len(rows):
        return logits
    decisive = torch.zeros(len(states), dtype=torch.bool, device=states.device)
    decisive[rows] = True
    own = (decisive & mask[:, env.stop]).nonzero()[:, 0]
    rows = torch.cat([rows, own])
    acts = torch.cat([acts, torch.full_like(own, env.stop)])
    objects = torch.cat([children, states[own]])
    hit = descriptor.index(descriptor.outcomes(objects)) == y[rows]
    exact = logits.clone()
    exact[rows, acts] = torch.where(hit, 0.0, NEG_INF)  # log C(x) = 0: an object is its only completion
    alive = (exact > NEG_INF / 2).any(1)
    return torch.where(alive[:, None], exact, logits)


class ClassifierModel(DescriptorModel):
    """A descriptor OC-GFN learned as classifiers (``ClassifierPretrainer``): log F(s0|y) = log sum_a F(s0.a|y)
    (s0 cannot stop where objects have at least one token, else its own term joins the sum)."""

    def __init__(self, env, model: OutcomeClassifier, descriptor: Descriptor, counts: torch.Tensor,
                 exact: bool = False) -> None:
        self.env, self.model, self.descriptor, self.counts, self.exact = env, model, descriptor, counts, exact

    def policy(self, y: torch.Tensor) -> ClassifierPolicy:
        return ClassifierPolicy(self.env, self.model, self.descriptor, y, self.exact)

    @torch.no_grad()
    def log_counts(self, y: torch.Tensor) -> torch.Tensor:
        s0 = self.env.initial_states(len(y))
        return torch.logsumexp(flow_logits(self.env, self.model, s0, self.descriptor.index(y)), -1)


def classifier_unsupported(env) -> str | None:
    """Why ``descriptor_loss: classifier`` cannot train on ``env`` (None: it can): its labels count an object's
    completions, which needs a tree and the domain's ``log_completions``; the config check asks before any job."""
    return missing(env, (TREE,)) or (None if hasattr(env, "log_completions") else
                                     f"needs {type(env).__name__}.log_completions")


class ClassifierPretrainer(Trainer):
    """Descriptor pre-training on a tree without a balance loss (``descriptor_loss: classifier``): each step
    draws ``batch_size`` objects from the policy uniform over objects (closed form on a tree: no explorer
    is needed to cover the space), labels every state of each trajectory with the outcome its object has
    (cross-entropy of ``completion``) and the last state and one random earlier state that may stop with
    their own descriptor (``here``). Every label is a plain classification target, where TB's failure
    residuals of dozens of nats are not."""

    name = "pretrain-descriptor"
    stateful = ("model", "opt", "outcome_counts", "transitions")

    def __init__(self, env, cfg: PretrainConfig, seed: int, device: torch.device, descriptor: Descriptor) -> None:
        super().__init__()
        reason = classifier_unsupported(env)
        if reason:
            raise ValueError(f"descriptor_loss: classifier {reason}; use descriptor_loss: tb")
        self.steps, self.eval_every, self.checkpoint_every = cfg.steps, cfg.eval_every, cfg.checkpoint_every
        self.env, self.cfg, self.seed, self.device, self.descriptor = env, cfg, seed, device, descriptor
        self.gen = seed_everything(seed, device)
        self.model = OutcomeClassifier(env.feature_dim, env.n_actions, descriptor.size, cfg.hidden, cfg.layers,
                                       descriptor if cfg.state_descriptor else None).to(device)
        self.opt = adam(self.model.parameters(), lr=cfg.lr)
        self.outcome_counts = torch.zeros(descriptor.size, dtype=torch.long, device=device)
        self.transitions = 0
        self.phases: dict[str, float] = {}

    def source(self) -> ClassifierModel:
        return ClassifierModel(self.env, self.model, self.descriptor, self.outcome_counts,
                               self.cfg.descriptor_boundary == "exact")

    def train_step(self) -> dict[str, float]:
        env, desc, n = self.env, self.descriptor, self.cfg.batch_size
        Pretrainer._schedule_lr(self)  # the same cosine decay (lr_decay) as the OC-GFN's
        traj = rollout(env, lambda s, rows, mask: masked_log_softmax(uniform_logits(env, s, mask), mask), n,
                       generator=self.gen)
        y = desc.index(desc.outcomes(traj.terminals))
        self.outcome_counts += torch.bincount(y, minlength=desc.size)
        t, b = traj.valid.nonzero(as_tuple=True)  # every move a trajectory makes: its object's outcome
        move = traj.actions[t, b] != env.stop
        t, b = t[move], b[move]
        completion, _ = self.model.read(env, traj.states[t, b])
        loss_completion = -completion[torch.arange(len(t), device=self.device), traj.actions[t, b], y[b]].mean()
        t, b = traj.valid.nonzero(as_tuple=True)
        # states that may stop, labelled with their own descriptor: each object, and one earlier state each
        stoppable = env.forward_mask(traj.states[t, b])[:, env.stop]
        pick = torch.rand(len(t), generator=self.gen, device=self.device).masked_fill(~stoppable, -1.0)
        best = torch.full((n,), -1.0, device=self.device).scatter_reduce(0, b, pick, "amax")
        chosen = (pick == best[b]) & stoppable
        states = torch.cat([traj.terminals, traj.states[t[chosen], b[chosen]]])
        _, here = self.model.read(env, states)
        loss_here = -here.gather(1, desc.index(desc.outcomes(states))[:, None]).mean()
        loss = loss_completion + loss_here
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.transitions += len(t)
        return {"completion_loss": loss_completion.item(), "here_loss": loss_here.item()}

    def evaluate(self, losses: dict[str, float]) -> dict[str, Any]:
        return descriptor_row(self, losses)

    def eval_generator(self) -> torch.Generator:
        return Pretrainer.eval_generator(self)

    def band_table(self) -> pd.DataFrame:
        """No level bands: the uniform policy covers every length by construction."""
        return pd.DataFrame()


def descriptor_row(trainer, losses: dict[str, float]) -> dict[str, Any]:
    """A metrics row of descriptor pre-training: conditional success (the fraction of y-conditioned samples
    whose descriptor is y, sampled and greedy, averaged over the outcomes seen so far), the outcome coverage
    (seen / |Y|) and the share of Y that conditioned samples reached."""
    trainer.model.eval()
    table = outcome_results(trainer.source(), trainer.cfg.descriptor_samples, trainer.eval_generator(),
                            trainer.cfg.eval_outcomes)
    trainer.model.train()
    evaluated = table[table["evaluated"]]
    size = trainer.descriptor.size
    return {"step": trainer.step, "trajectories": trainer.step * trainer.cfg.batch_size,
            "transitions": trainer.transitions,
            "success_greedy": float(evaluated["success_greedy"].mean()) if len(evaluated) else math.nan,
            "success_sample": float(evaluated["success_sample"].mean()) if len(evaluated) else math.nan,
            "explorer_coverage": math.nan, "outcome_coverage": int(trainer.outcome_counts.gt(0).sum()) / size,
            "outcomes_reached": int(table["reached"].sum()) / size, "seconds": trainer.elapsed, **losses}


def _retry(draw, descriptor: Descriptor, y: torch.Tensor, generator, tries: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = draw(y, generator)
    hit = (descriptor.outcomes(x) == y).all(-1)
    for _ in range(tries - 1):
        if hit.all():
            break
        miss = (~hit).nonzero()[:, 0]
        again = draw(y[miss], generator)
        ok = (descriptor.outcomes(again) == y[miss]).all(-1)
        x[miss[ok]], hit[miss[ok]] = again[ok], True
    return x, hit


class DescriptorPretrainer(Pretrainer):
    """OC-GFN pre-training towards descriptor outcomes (module docstring); the explorer and RND unchanged."""

    name = "pretrain-descriptor"
    stateful = (*Pretrainer.stateful, "outcome_counts", "log_z", "z_opt")

    def __init__(self, env, cfg: PretrainConfig, seed: int, device: torch.device, descriptor: Descriptor) -> None:
        if cfg.uses_data or cfg.conditioning == "pairs" or cfg.ot == "reachable":
            raise ValueError("outcomes: descriptor takes no data set, no pair conditioning and no 'reachable' "
                             "outcome teleportation (there is no reachability test); use ot: off")
        self.descriptor = descriptor
        super().__init__(env, cfg, seed, device)
        self.outcome_counts = torch.zeros(descriptor.size, dtype=torch.long, device=device)
        self.log_z = torch.nn.Parameter(torch.full((descriptor.size,), log_size_bound(env), device=device))
        self.z_opt = adam([self.log_z], lr=cfg.z_lr)
        self.log_eps = failure_log_reward(env, cfg)

    def outcome_arch(self) -> dict[str, Any]:
        return {"outcome_dim": self.descriptor.width}

    def source(self) -> DescriptorModel:
        return DescriptorModel(self.env, self.model, self.descriptor, self.log_z, self.outcome_counts)

    def learn(self, positives: Trajectories) -> dict[str, float]:
        """One update: rollouts towards this step's goals, the explorer's trajectories relabelled with their
        own descriptors (contrastive), and (relabel_own) the rollouts with what they reached; TB per set."""
        env, cfg, desc = self.env, self.cfg, self.descriptor
        self._schedule_lr()
        outcomes = desc.outcomes(positives.terminals)
        self.outcome_counts += torch.bincount(desc.index(outcomes), minlength=desc.size)
        goals = self.goals(outcomes)
        t = time.perf_counter()
        source = self.source()
        negatives = rollout(env, source.policy(goals), len(goals), cfg.negative_epsilon, generator=self.gen)
        t = self._phase("OC-GFN rollout", t)
        sets, trajectories = loss_sets(cfg, goals, negatives, outcomes, positives, desc.outcomes(negatives.terminals))
        y = torch.cat(sets)
        batch = Trajectories.concat(trajectories)
        terms = transition_terms(env, batch, source.policy(y).flows, y)
        t = self._phase("OC-GFN forward", t)
        hit = (desc.outcomes(batch.terminals) == y).all(-1)
        loss = descriptor_tb_loss(terms, self.log_z[desc.index(y)], hit, self.log_eps, sets=len(sets))
        t = self._phase("TB loss", t)
        self.opt.zero_grad()
        self.z_opt.zero_grad()
        loss.backward()
        t = self._phase("OC-GFN backward", t)
        self.opt.step()
        self.z_opt.step()
        self._phase("OC-GFN optimiser", t)
        self.transitions += int(positives.valid.sum() + negatives.valid.sum())
        return {"oc_loss": loss.item(), "neg_success": hit[:len(goals)].float().mean().item()}

    def goals(self, outcomes: torch.Tensor) -> torch.Tensor:
        """The explorer's outcomes, the first ``random_goals`` fraction drawn uniformly among the outcomes
        seen so far instead."""
        k = round(self.cfg.random_goals * len(outcomes))
        if not k:
            return outcomes
        seen = (self.outcome_counts > 0).nonzero()[:, 0]
        drawn = seen[torch.randint(len(seen), (k,), generator=self.gen, device=self.device)]
        return torch.cat([self.descriptor.from_index(drawn), outcomes[k:]])

    def evaluate(self, losses: dict[str, float]) -> dict[str, Any]:
        row = descriptor_row(self, losses)
        return {**row, "trajectories": 2 * self.step * self.cfg.batch_size}


@torch.no_grad()
def outcome_results(source, samples: int, generator: torch.Generator, most: int | None = None) -> pd.DataFrame:
    """One row per outcome of Y: its bins, how often pre-training's explorer met it, its log-count, and for the
    outcomes ``source`` knows (at most ``most``, a seeded subset) the success of ``samples`` conditioned draws
    and of the greedy draw; ``reached``: some draw hit it."""
    desc = source.descriptor
    known = source.known().nonzero()[:, 0]
    if most is not None and len(known) > most:
        known = known[torch.randperm(len(known), generator=generator, device=known.device)[:most]].sort().values
    y = desc.from_index(known)
    sampled = torch.zeros(len(y), device=y.device)
    if len(y):
        x = source.draw(y.repeat(samples, 1), generator)
        sampled = (desc.outcomes(x) == y.repeat(samples, 1)).all(-1).view(samples, len(y)).float().mean(0)
        greedy = (desc.outcomes(source.draw(y, None, greedy=True)) == y).all(-1).float()
        log_counts = source.log_counts(y)
    size = desc.size
    rows = {"outcome": np.arange(size)}
    every = desc.all_outcomes()
    for d, name in enumerate(desc.dims):
        rows[name] = every[:, d].numpy()
        rows[f"{name}_range"] = [desc.label(d, int(b)) for b in every[:, d]]
    frame = pd.DataFrame(rows)
    frame["explorer_count"] = source.counts.cpu().numpy()
    frame["evaluated"] = False
    for col in ("log_count", "success_sample", "success_greedy"):
        frame[col] = math.nan
    if len(y):
        at = known.cpu().numpy()
        frame.loc[at, "evaluated"] = True
        frame.loc[at, "log_count"] = log_counts.cpu().numpy()
        frame.loc[at, "success_sample"] = sampled.cpu().numpy()
        frame.loc[at, "success_greedy"] = greedy.cpu().numpy()
    frame["reached"] = frame["success_sample"].fillna(0) > 0
    return frame


def window_results(env, source, windows: dict[str, dict[str, list[float]]], n: int,
                   generator: torch.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The descriptor-window sampler, with no reward call: per window, ``n`` objects drawn by picking an
    outcome inside it (weighted by its log-count, as objects in the window are) among those the source
    knows, then one conditioned draw each (no retry: the fraction inside measures the sampler). Columns:
    validity (the domain's, else 1), uniqueness (distinct / n), the fraction inside the window and the
    fraction with exactly the drawn outcome; beside them the no-pre-training control, ``random_in_window``:
    the fraction of ``n`` random objects (``env.random_outcomes``, the control's pool; one pool for every window,
    from a generator of its own, so the sampler's draws are those it makes alone) inside the window, the
    acceptance rate of drawing random objects until one falls inside, and ``lift``, how many times fewer draws
    the sampler needs per object inside (NaN where no random object fell inside). Second table: the sampled
    objects themselves, what a user of the sampler takes away (``window``, ``window_outcome``: the drawn
    outcome's index, the object columns of ``env.describe``, ``phi_<dim>``: the raw value of each descriptor
    dimension, ``in_window``); a window holding no outcome the source knows has no rows."""
    desc, rows, drawn = source.descriptor, [], []
    control = torch.Generator(generator.device).manual_seed(generator.initial_seed() + 1)
    pool = desc.values(env.random_outcomes(n, control)) if windows else None
    for name, window in windows.items():
        inside = desc.window_outcomes(window).to(source.counts.device) & source.known()
        uniform = float(desc.in_window(pool, window).mean())
        row: dict[str, Any] = {"window": name, "bounds": str(window), "samples": n,
                               "window_outcomes": int(inside.sum()), "random_in_window": uniform}
        if not inside.any():
            rows.append({**row, "validity": math.nan, "uniqueness": math.nan, "in_window": math.nan,
                         "on_outcome": math.nan, "lift": math.nan})
            continue
        cand = inside.nonzero()[:, 0]
        weights = torch.softmax(source.log_counts(desc.from_index(cand)), 0)
        y = desc.from_index(cand[torch.multinomial(weights, n, replacement=True, generator=generator)])
        x = source.draw(y, generator)
        values = desc.values(x)
        metrics = env.sample_metrics(x, x[:0])
        inside_window = np.asarray(desc.in_window(values, window), dtype=bool)
        in_window = float(inside_window.mean())
        drawn.append(_window_objects(env, desc, name, y, x, values, inside_window))
        rows.append({**row, "validity": metrics.get("validity", 1.0),
                     "uniqueness": len(set(env.object_keys(x))) / n, "in_window": in_window,
                     "on_outcome": float((desc.binned(values).to(y.device) == y).all(-1).float().mean()),
                     "lift": in_window / uniform if uniform > 0 else math.nan})
    return pd.DataFrame(rows), pd.concat(drawn, ignore_index=True) if drawn else pd.DataFrame()


def _window_objects(env, desc: Descriptor, name: str, y: torch.Tensor, x: torch.Tensor, values: np.ndarray,
                    inside: np.ndarray) -> pd.DataFrame:
    """The window sampler's objects as rows; descriptor values are ``phi_<dim>`` so that no dimension's name can
    overwrite an object column (a hypergrid's ``describe`` has its own ``outcome``)."""
    columns = {"window": name, "window_outcome": desc.index(y).cpu().numpy()}
    objects = env.describe(x)
    phi = {f"phi_{dim}": values[:, d] for d, dim in enumerate(desc.dims)}
    clash = sorted((set(columns) | {"in_window"} | set(phi)) & set(objects))
    if clash:
        raise ValueError(f"window samples: {type(env).__name__}.describe returns {clash}, names the window table "
                         f"uses itself; rename them in describe")
    return pd.DataFrame({**columns, **objects, **phi, "in_window": inside})


def model_entries(trainer: DescriptorPretrainer | ClassifierPretrainer, spec: dict[str, Any]) -> dict[str, Any]:
    """The extra entries of a descriptor model file: its descriptor spec, the learned log-counts and the
    explorer's outcome counts."""
    extra = {"log_z": trainer.log_z.detach().cpu()} if hasattr(trainer, "log_z") else {}
    return {"descriptor": spec, "outcome_counts": trainer.outcome_counts.cpu(), **extra}


def load_descriptor_model(path: str, env, device: torch.device) -> DescriptorModel:
    """A descriptor OC-GFN from its pre-training job's model file, in eval mode, frozen."""
    saved = io.load_checkpoint(path, device)
    cfg = saved["config"]
    if cfg.get("outcomes", "objects") != "descriptor":
        raise ValueError(f"{path}: this model was pre-trained on object outcomes (outcomes: objects); the descriptor "
                         f"methods adapt a variant with outcomes: descriptor")
    descriptor = make_descriptor(saved["descriptor"], env)
    if cfg.get("descriptor_loss", "classifier") == "classifier":
        reads = descriptor if cfg.get("state_descriptor", False) else None  # models saved before it: tokens only
        classifier = OutcomeClassifier(env.feature_dim, env.n_actions, descriptor.size, cfg["hidden"],
                                       cfg["layers"], reads).to(device)
        classifier.load_state_dict(saved["state_dict"])
        classifier.eval().requires_grad_(False)
        return ClassifierModel(env, classifier, descriptor, saved["outcome_counts"].to(device),
                               cfg.get("descriptor_boundary", "learned") == "exact")
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, cfg["hidden"],
                                       cfg["layers"], cfg["learn_pb"], cfg.get("conditioning", "concat"), 0,
                                       descriptor.width).to(device)
    model.load_state_dict(saved["state_dict"])
    model.eval().requires_grad_(False)
    return DescriptorModel(env, model, descriptor, saved["log_z"].to(device), saved["outcome_counts"].to(device))
