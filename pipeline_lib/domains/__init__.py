"""Domain registry: build an environment from its config entry."""
from __future__ import annotations

from typing import Any

import torch

from pipeline_lib.core.env import EnumerableEnvironment, Environment
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.molecule.env import Molecule
from pipeline_lib.domains.sequence.env import Sequence

DOMAINS = {"hypergrid": HyperGrid, "sequence": Sequence, "molecule": Molecule}


def make_env(domain: str, params: dict[str, Any], device: torch.device | str = "cpu") -> Environment:
    """Instantiate a domain by name; unknown names and bad parameters name the offending key."""
    if domain not in DOMAINS:
        raise ValueError(f"envs.*.domain: unknown domain {domain!r}; expected one of {sorted(DOMAINS)}")
    try:
        return DOMAINS[domain](**params, device=device)
    except (TypeError, ValueError) as err:
        raise ValueError(f"envs.*.params for domain {domain!r}: {err}") from err


__all__ = ["DOMAINS", "EnumerableEnvironment", "Environment", "HyperGrid", "Molecule", "Sequence", "make_env"]
