"""The exact conversion over descriptor outcomes (beyond the paper; ocgfn/descriptor.py): for a reward that
is a function of phi, R(x) = g(phi(x)), the target R(x)^beta / Z is reached by drawing y with probability
g(y)^beta N(y) / Z (N(y) = F(s0|y), the learned count) and then x from the y-conditioned sampler. One reward
call per outcome (on one object drawn with that descriptor), no training. For any other reward the same
construction is an approximation (each outcome scored by one representative); ``outcome_search`` refines it.

The no-pre-training control (``pretrained: control``) is ``RejectionControl``: random objects grouped by
descriptor, counts estimated from their shares."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from pipeline_lib.core.nets import NEG_INF
from pipeline_lib.methods.base import Method
from pipeline_lib.ocgfn.sources import CONTROL

EVAL_SAMPLES = 2048  # draws behind the outcome-histogram check of exact_metrics


@dataclass
class OutcomeConversionSettings:
    tries: int = 8  # draws per outcome to find an object that has it (phi costs no reward call)
    pool: int = 20000  # the control's random objects


class OutcomeMethod(Method):
    """What the descriptor methods share: the source (a pre-trained descriptor OC-GFN, or the control built
    here from the job's descriptor), sampling through outcome weights, and the outcome-histogram check."""

    uses_pretrained = True
    uses_descriptor = True

    @classmethod
    def load_source(cls, pretrained: str, path: str | None, env, device: torch.device, descriptor: dict | None):
        from pipeline_lib.descriptors import make_descriptor
        from pipeline_lib.ocgfn.descriptor import load_descriptor_model

        if pretrained == CONTROL:
            return make_descriptor(descriptor, env)  # the control is built in __init__, with the method's seed
        if path is None:
            raise ValueError(f"pretrained: {pretrained!r} names a pre-trained variant, but no model file was given")
        return load_descriptor_model(path, env, device)

    @classmethod
    def without_weights(cls, settings: Any) -> str | None:
        return None  # the control is RejectionControl

    def __init__(self, task, settings: Any, seed: int, device: torch.device, pretrained=None,
                 data: torch.Tensor | None = None) -> None:
        from pipeline_lib.descriptors import Descriptor
        from pipeline_lib.ocgfn.descriptor import RejectionControl

        super().__init__(task, settings, seed, device, pretrained, data)
        if isinstance(pretrained, Descriptor):
            pretrained = RejectionControl(self.env, pretrained, settings.pool, self.gen)
        self.source, self.descriptor = pretrained, pretrained.descriptor

    def weights(self) -> torch.Tensor:
        """log of the (unnormalised) probability of each outcome under the final sampler [|Y|]."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """y with probability softmax(weights), then an object with descriptor y (misses drawn again, up to
        ``tries``); no reward call."""
        probs = torch.softmax(self.weights(), 0)
        y = self.descriptor.from_index(torch.multinomial(probs, n, replacement=True, generator=generator))
        return self.source.sample(y, generator, self.cfg.tries)[0]

    def exact_metrics(self) -> dict[str, float]:
        """Beside the base's: ``outcome_l1``, the L1 between the outcome histogram of EVAL_SAMPLES draws and
        the sampler's own outcome weights (R(y) F(s0|y) / Z: is the y-conditioned sampler faithful?), and on
        an enumerable space ``outcome_l1_exact``, against the exact target's outcome marginal (sum over the
        objects with descriptor y of R^beta / Z)."""
        out = super().exact_metrics()
        if self.step < self.steps:  # the check costs EVAL_SAMPLES draws: at the end only
            return {**out, "outcome_l1": math.nan, "outcome_l1_exact": math.nan}
        desc, gen = self.descriptor, torch.Generator(self.device).manual_seed(12345)
        x = self.sample(EVAL_SAMPLES, gen)
        hist = torch.bincount(desc.index(desc.outcomes(x)).cpu(), minlength=desc.size).float() / EVAL_SAMPLES
        out["outcome_l1"] = float((hist - torch.softmax(self.weights(), 0).cpu()).abs().sum())
        out["outcome_l1_exact"] = math.nan
        if self.task.enumerable:
            terminals = self.env.terminal_states()
            target = self.task.target[self.env.index(terminals).cpu()]
            exact = torch.zeros(desc.size).index_add(0, desc.index(desc.outcomes(terminals)).cpu(), target.float())
            out["outcome_l1_exact"] = float((hist - exact).abs().sum())
        return out


class OutcomeConversion(OutcomeMethod):
    kind = "outcome_conversion"
    Settings = OutcomeConversionSettings
    stateful = ("log_w", *Method.stateful)

    def __init__(self, task, settings: OutcomeConversionSettings, seed: int, device: torch.device, pretrained=None,
                 data: torch.Tensor | None = None) -> None:
        super().__init__(task, settings, seed, device, pretrained, data)
        desc = self.descriptor
        known = self.source.known().nonzero()[:, 0]
        y = desc.from_index(known)
        x, hit = self.source.sample(y, self.gen, settings.tries)
        self.log_w = torch.full((desc.size,), NEG_INF, device=device)
        if hit.any():  # one reward call per outcome that has a representative
            log_r = task.log_reward(x[hit])
            self.log_w[known[hit]] = log_r + self.source.log_counts(y[hit])
        self.converted, self.missed = int(hit.sum()), int((~hit).sum())
        if not self.converted:
            raise ValueError("outcome_conversion: no outcome has an object with its descriptor; nothing to convert")

    def weights(self) -> torch.Tensor:
        return self.log_w

    def train_step(self) -> dict[str, float]:
        raise RuntimeError("the outcome conversion does not train")

    def evaluate(self, losses: dict[str, float]) -> dict[str, Any]:
        return super().evaluate({**losses, "outcomes_converted": self.converted, "outcomes_missed": self.missed})
