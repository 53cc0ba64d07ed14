"""Fine-tuning the OC-GFN's own weights on R (the reviewers' question): an unconditional GFlowNet built
from the pre-trained networks (``nets.OutcomeFree``: the outcome input replaced by one learned embedding,
initialised to the mean embedding of the outcomes, plus a learned log Z), every weight trained with DB,
TB or SubTB exactly as the scratch GFlowNet is. ``init: random`` builds the same architecture from a
random initialisation: the row that says what the pre-trained weights are worth."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline_lib.methods.scratch import Scratch, ScratchSettings

INITS = ("pretrained", "random")


@dataclass
class FineTunedSettings(ScratchSettings):
    init: str = "pretrained"  # pretrained | random: the OC-GFN's weights, or the same architecture untrained
    embedding_outcomes: int = 1024  # outcomes whose mean embedding initialises the learned one


class FineTuned(Scratch):
    kind = "finetuned"
    Settings = FineTunedSettings
    uses_pretrained = True
    control_settings = {"init": "random"}  # random initialisation: this kind's no-pre-training control

    @classmethod
    def unsupported(cls, env, settings: FineTunedSettings) -> str | None:
        if settings.init not in INITS:
            return f"takes init in {INITS}, got {settings.init!r}"
        return super().unsupported(env, settings)

    @classmethod
    def without_weights(cls, settings: FineTunedSettings) -> str | None:
        return ("pretrained: fine-tuning starts from a pre-trained variant's weights, and with init: random still "
                "reads its architecture: name a variant; the no-pre-training control of this kind is init: random")

    def build(self, pretrained) -> tuple[torch.nn.Module, torch.nn.Parameter]:
        from pipeline_lib.ocgfn.pretrain import outcome_free

        model = outcome_free(self.env, getattr(pretrained, "model", pretrained), self.cfg.embedding_outcomes,
                             self.gen, random_init=self.cfg.init == "random")
        return model, model.log_z
