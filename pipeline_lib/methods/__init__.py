"""The method registry: the one list of adaptation algorithms. The config schema, the config check, the
workflow and the docs read it; adding a method is its file and one line here."""
from __future__ import annotations

from pipeline_lib.methods.amortized import Amortized
from pipeline_lib.methods.base import Method
from pipeline_lib.methods.dqn import DQN
from pipeline_lib.methods.exact_conversion import ExactConversion
from pipeline_lib.methods.finetuned import FineTuned
from pipeline_lib.methods.mcmc import MCMC
from pipeline_lib.methods.outcome_conversion import OutcomeConversion
from pipeline_lib.methods.outcome_search import OutcomeSearch
from pipeline_lib.methods.random_search import RandomSearch
from pipeline_lib.methods.scratch import Scratch

METHODS: dict[str, type[Method]] = {
    cls.kind: cls for cls in (ExactConversion, Amortized, FineTuned, Scratch, MCMC, DQN, RandomSearch,
                           OutcomeConversion, OutcomeSearch)
}


def method_class(kind: str) -> type[Method]:
    """The class of a registered method kind."""
    if kind not in METHODS:
        raise ValueError(f"kind: unknown method kind {kind!r}; expected one of {sorted(METHODS)}")
    return METHODS[kind]


__all__ = ["METHODS", "Method", "method_class"]
