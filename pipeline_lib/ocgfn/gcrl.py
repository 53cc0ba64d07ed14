"""Goal-conditioned RL with hindsight relabelling: the pre-training baseline reviewers asked for.

A goal-conditioned double DQN learns Q(s, a | y), the probability of ending at y (reward 1 for stopping
at y, 0 for stopping elsewhere or for a move after which y is unreachable: the knowledge outcome
teleportation gives the OC-GFN). What it shares with OC-GFN pre-training, so the two compare at equal
environment steps: the network (the OC-GFN's class, Q-values in its P_F logits), the GAFlowNet explorer
with RND whose terminals are the goals, and one explorer batch plus one batch of its own rollouts per
step. Its behaviour policy is softmax(Q / temperature) mixed with ``explorer_epsilon`` of uniform moves;
the same Boltzmann policy is what adaptation reads (``sources.BoltzmannQ``).

Hindsight relabelling (Andrychowicz et al. 2017) adds, per transition of its own rollouts, the goal
``final`` (the trajectory's terminal: every transition leads to success) and ``future`` (a later object
of the same trajectory, with the stop transition there that reaching it means).
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from pipeline_lib.core.nets import masked_log_softmax, oc_inputs
from pipeline_lib.core.rollout import Trajectories, rollout
from pipeline_lib.ocgfn.pretrain import OCGFNPolicy, PretrainConfig, Pretrainer

ALGORITHMS = ("ocgfn", "gcrl")
HER = ("none", "final", "future", "final+future")
# The settings each algorithm never reads (the OC-GFN's loss and rollouts; this double DQN's): a job carries them at
# their defaults, so a value set for every variant reruns only the variants that read it (config.pretrain_config)
UNREAD = {"ocgfn": ("her", "gamma", "temperature", "target_every", "replay_size", "replay_batch"),
          "gcrl": ("ot", "contrastive", "relabel_own", "negative_epsilon", "log_eps_fail")}


class Replay:
    """A ring buffer of transitions: state, action, next state, goal, reward, done (tensors on ``device``, where
    a resumed buffer goes back to: checkpoints load on the CPU)."""

    KEYS = ("state", "action", "next_state", "goal", "reward", "done")

    def __init__(self, capacity: int, device: torch.device) -> None:
        self.capacity, self.size, self.pos, self.device = capacity, 0, 0, device
        self.data: dict[str, torch.Tensor] = {}

    def add(self, **batch: torch.Tensor) -> None:
        n = len(batch["action"])
        if not self.data:
            self.data = {k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype, device=self.device)
                         for k, v in batch.items()}
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        for key in self.KEYS:
            self.data[key][idx] = batch[key]
        self.pos, self.size = (self.pos + n) % self.capacity, min(self.size + n, self.capacity)

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.size, (n,), generator=generator, device=self.device)
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "pos": self.pos, "data": {k: v[:self.size] for k, v in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size, self.pos, self.data = state["size"], state["pos"], {}
        for key, value in state["data"].items():
            self.data[key] = torch.zeros((self.capacity, *value.shape[1:]), dtype=value.dtype, device=self.device)
            self.data[key][:len(value)] = value


class Boltzmann(torch.nn.Module):
    """A Q network seen as a conditional policy: its Q-values divided by the temperature, as P_F logits."""

    def __init__(self, model: torch.nn.Module, temperature: float) -> None:
        super().__init__()
        self.model, self.temperature, self.pair_dim = model, temperature, model.pair_dim

    def forward(self, *inputs: torch.Tensor):
        log_f, q, pb = self.model(*inputs)
        return log_f, q / self.temperature, pb


class GCRLPretrainer(Pretrainer):
    """The explorer and RND of OC-GFN pre-training, a goal-conditioned double DQN in place of the OC-GFN."""

    name = "gcrl"
    stateful = (*Pretrainer.stateful, "target", "replay")

    def __init__(self, env, cfg: PretrainConfig, seed: int, device: torch.device) -> None:
        if cfg.her not in HER:
            raise ValueError(f"her: expected one of {HER}, got {cfg.her!r}")
        super().__init__(env, cfg, seed, device)
        self.target = copy.deepcopy(self.model).requires_grad_(False)
        self.replay = Replay(cfg.replay_size, device)

    def sampler(self) -> torch.nn.Module:
        return Boltzmann(self.model, self.cfg.temperature)

    def learn(self, positives: Trajectories) -> dict[str, float]:
        env, cfg = self.env, self.cfg
        self._schedule_lr()
        goals = self.goals(positives.terminals)
        episodes = rollout(env, OCGFNPolicy(env, self.sampler(), goals), len(goals), cfg.explorer_epsilon,
                           generator=self.gen)
        self._remember(episodes, goals)
        loss = self._update(self.replay.sample(cfg.replay_batch, self.gen))
        if self.step % cfg.target_every == 0:
            self.target.load_state_dict(self.model.state_dict())
        self.transitions += int(positives.valid.sum() + episodes.valid.sum())
        return {"q_loss": loss, "neg_success": env.same(episodes.terminals, goals).float().mean().item()}

    def _remember(self, traj: Trajectories, goals: torch.Tensor) -> None:
        """Store each transition with its own goal and the relabelled ones."""
        env, her = self.env, self.cfg.her
        t, b, s, a = traj.transitions()
        s_next = traj.states[t + 1, b]
        sets = [(s, a, s_next, goals[b])]
        if "final" in her:
            sets.append((s, a, s_next, traj.terminals[b]))
        if "future" in her:  # a later state of the same trajectory, kept where it is an object
            length = traj.valid.sum(0)[b]  # transitions of the trajectory; states[length - 1] is its terminal
            later = t + 1 + (torch.rand(len(t), generator=self.gen, device=t.device) * (length - 1 - t)).long()
            keep = (later <= length - 1) & ~(a == env.stop)
            goal = traj.states[later, b]
            keep &= env.forward_mask(goal)[:, env.stop]
            sets.append((s[keep], a[keep], s_next[keep], goal[keep]))
            stop = torch.full((int(keep.sum()),), env.stop, dtype=a.dtype, device=a.device)
            sets.append((goal[keep], stop, goal[keep], goal[keep]))  # stopping at the goal: the success
        for state, action, next_state, goal in sets:
            is_stop = action == env.stop
            reward = (is_stop & env.same(state, goal)).float()
            done = is_stop | ~env.can_reach(next_state, goal)
            self.replay.add(state=state, action=action, next_state=next_state, goal=goal, reward=reward, done=done)

    def _update(self, batch: dict[str, torch.Tensor]) -> float:
        """One double-DQN step: the online network picks the next action, the target network values it."""
        env, cfg = self.env, self.cfg
        goal = batch["goal"]
        goal_feats = env.featurize(goal)
        with torch.no_grad():
            nxt = batch["next_state"]
            inputs = oc_inputs(env, self.model, nxt, goal, goal_feats)
            online = self.model(*inputs)[1]
            pick = masked_log_softmax(online, env.forward_mask(nxt)).argmax(-1, keepdim=True)
            value = self.target(*inputs)[1].gather(1, pick)[:, 0]
            target = batch["reward"] + cfg.gamma * (~batch["done"]).float() * value
        s = batch["state"]
        q = self.model(*oc_inputs(env, self.model, s, goal, goal_feats))[1].gather(1, batch["action"][:, None])[:, 0]
        loss = torch.nn.functional.smooth_l1_loss(q, target)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()


def pretrainer(env, cfg: PretrainConfig, seed: int, device: torch.device, data: torch.Tensor | None = None,
               holdout: torch.Tensor | None = None, descriptor=None) -> Pretrainer:
    """The trainer of a pre-training variant: the OC-GFN's, or the GCRL baseline's (``algorithm``); ``data``
    and ``holdout``: the splits of the environment's data set, where the variant draws on it; ``descriptor``:
    the environment's phi(x), where the variant's outcomes are descriptors (ocgfn/descriptor.py)."""
    if cfg.outcomes == "descriptor":
        from pipeline_lib.ocgfn.descriptor import ClassifierPretrainer, DescriptorPretrainer

        if descriptor is None or cfg.algorithm != "ocgfn":
            raise ValueError("outcomes: descriptor needs the OC-GFN algorithm and the environment's descriptor")
        cls = ClassifierPretrainer if cfg.descriptor_loss == "classifier" else DescriptorPretrainer
        return cls(env, cfg, seed, device, descriptor)
    if cfg.algorithm == "gcrl":
        if data is not None:
            raise ValueError("data_goals / data_positives: the GCRL baseline takes its goals from the explorer only")
        return GCRLPretrainer(env, cfg, seed, device)
    if cfg.algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {ALGORITHMS}, got {cfg.algorithm!r}")
    return Pretrainer(env, cfg, seed, device, data, holdout)
