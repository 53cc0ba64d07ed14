"""A downstream task: the environment, its reward behind the oracle, its modes, and where the space can
be listed, the exact target. Every domain gets the same object, so every method is written once."""
from __future__ import annotations

from functools import cached_property
from typing import Any

import torch

from pipeline_lib.core.env import ENUMERABLE
from pipeline_lib.core.exact import StateGraph, listed_states
from pipeline_lib.tasks.modes import DEFAULT, make_modes
from pipeline_lib.tasks.oracle import Oracle
from pipeline_lib.tasks.rewards import Reward, make_reward, reward_values

TOP_K = 100


class Task:
    """A reward on an environment. Methods query it only through ``log_reward`` (counted, R^exponent);
    the exact target and the mode definition read the landscape uncounted (they are the evaluation,
    not the search).

    ``spec`` is the task's resolved config entry (reward, params, exponent, modes). ``known``: the training
    objects of the environment's data set, if it has one: the oracle then also counts the modes outside them."""

    def __init__(self, env, spec: dict[str, Any], resources: str = "resources",
                 known: torch.Tensor | None = None) -> None:
        self.env, self.spec = env, spec
        self.exponent = float(spec.get("exponent", 1.0))
        bound = make_reward(spec["reward"], dict(spec.get("params", {})), env, resources)
        self.reward = Reward(lambda x: self._checked(bound, x), bound.caches)
        self.enumerable = env.capabilities()[ENUMERABLE] is None
        self.oracle = Oracle(self.reward, self.new_modes(), env.object_keys, env.diversity, TOP_K,
                             known=None if known is None else set(env.object_keys(known)))

    def _checked(self, reward, x: torch.Tensor) -> torch.Tensor:
        """R(x), refused where it is not one positive finite value per object (``reward_values``, naming the
        object): the config check calls the reward on a sample only, and a zero met later would otherwise be
        clamped into a log-reward of -69 in silence."""
        try:
            return reward_values(reward(x), len(x), self.spec["reward"], self.env.describe, x)
        except ValueError as err:
            raise ValueError(f"task {self.spec.get('name', '?')!r}: {err}") from err

    def check_every_object(self) -> None:
        """On a space that can be listed, R of every object (the landscape the evaluation reads), checked before any
        training: a value <= 0 that a run met late, or only at its final evaluation, would cost the whole run."""
        if self.enumerable:
            self.landscape  # noqa: B018 (cached; ``_checked`` refuses a bad value, naming the object)

    def new_modes(self):
        """A fresh counter of this task's modes (the oracle's, or one for a set of final samples)."""
        return make_modes(self.env, self.spec.get("modes") or DEFAULT, self.spec["reward"],
                          dict(self.spec.get("params", {})), lambda: self.landscape)

    def log_reward(self, x: torch.Tensor) -> torch.Tensor:
        """exponent * log R(x), through the counting oracle (what the methods train on). No floor: every value was
        checked positive and finite in float32 (``tasks.rewards``), so a landscape of 1e-32 keeps its shape."""
        return self.exponent * self.oracle(x).log()

    def uncounted_log_reward(self, x: torch.Tensor) -> torch.Tensor:
        """exponent * log R(x) without the oracle: for evaluating final samplers, not for search."""
        return self.exponent * torch.as_tensor(self.reward(x), dtype=torch.float32).log()

    @cached_property
    def graph(self) -> StateGraph:
        """Every state and edge (enumerable spaces only)."""
        return StateGraph.build(self.env)

    @cached_property
    def landscape(self) -> torch.Tensor:
        """R over ``env.terminal_states()``, uncounted (enumerable spaces only)."""
        return torch.as_tensor(self.reward(self.env.terminal_states()), dtype=torch.float32)

    @cached_property
    def target(self) -> torch.Tensor:
        """The exact target R^exponent / Z over every state in ``env.index`` order (0 off the terminals)."""
        listed_states(self.env)  # an index out of order or with gaps is named, not an IndexError below
        log_r = torch.full((self.env.n_states,), -float("inf"))
        log_r[self.env.index(self.env.terminal_states()).cpu()] = self.exponent * self.landscape.log().cpu()
        return torch.softmax(log_r, 0)
