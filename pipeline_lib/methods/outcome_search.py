"""Search through descriptor outcomes for a general reward (beyond the paper; ocgfn/descriptor.py): the
pre-trained model is a proposal. Each step draws outcomes y with probability proportional to
N(y) x the mean of R^beta over the objects of y queried so far (the target's outcome marginal, estimated;
an outcome not queried yet is scored optimistically with the best mean so far), then one object of each y
from the y-conditioned sampler, and queries the reward. It learns which outcomes hold high reward and
samples within them; within an outcome it is as uniform as the sampler. ``pretrained: control``: the same
search over the control's random objects (``RejectionControl``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline_lib.core.nets import NEG_INF
from pipeline_lib.methods.base import Method, TrainedSettings
from pipeline_lib.methods.outcome_conversion import OutcomeMethod


@dataclass
class OutcomeSearchSettings(TrainedSettings):
    tries: int = 2  # draws per object to hit its outcome
    pool: int = 20000  # the control's random objects


class OutcomeSearch(OutcomeMethod):
    kind = "outcome_search"
    Settings = OutcomeSearchSettings
    stateful = ("log_sum", "queried", *Method.stateful)

    def __init__(self, task, settings: OutcomeSearchSettings, seed: int, device: torch.device, pretrained=None,
                 data: torch.Tensor | None = None) -> None:
        super().__init__(task, settings, seed, device, pretrained, data)
        size = self.descriptor.size
        self.log_sum = torch.full((size,), NEG_INF, device=device)  # log sum of R^beta of queried objects, per y
        self.queried = torch.zeros(size, device=device)
        self.log_counts = torch.full((size,), NEG_INF, device=device)
        known = self.source.known().nonzero()[:, 0]
        self.log_counts[known] = self.source.log_counts(self.descriptor.from_index(known))

    def weights(self) -> torch.Tensor:
        mean = torch.where(self.queried > 0, self.log_sum - self.queried.clamp(min=1).log(),
                           torch.full_like(self.log_sum, NEG_INF))
        best = mean.max() if (self.queried > 0).any() else torch.zeros((), device=mean.device)
        score = torch.where(self.queried > 0, mean, best)
        return torch.where(self.log_counts > NEG_INF / 2, self.log_counts + score, self.log_counts)

    def train_step(self) -> dict[str, float]:
        desc = self.descriptor
        probs = torch.softmax(self.weights(), 0)
        y = desc.from_index(torch.multinomial(probs, self.cfg.batch_size, replacement=True, generator=self.gen))
        x, hit = self.source.sample(y, self.gen, self.cfg.tries)
        log_r = self.task.log_reward(x)
        got = desc.index(desc.outcomes(x))  # a miss counts for the outcome it has
        self.queried.index_add_(0, got, torch.ones_like(log_r))
        top = torch.maximum(self.log_sum, torch.full_like(self.log_sum, NEG_INF).scatter_reduce(0, got, log_r, "amax"))
        total = (self.log_sum - top).exp().index_add(0, got, (log_r - top[got]).exp())
        self.log_sum = torch.where(total > 0, top + total.clamp(min=1e-30).log(), self.log_sum)
        self.trajectories += len(x)
        return {"hit_rate": hit.float().mean().item()}
