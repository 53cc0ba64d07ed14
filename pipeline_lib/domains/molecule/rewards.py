"""Molecule rewards: the RDKit objectives of ``chem`` read the canonical SMILES of each token string."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline_lib.domains.molecule.chem import MOLECULE_REWARDS, molecule_reward

REWARDS = MOLECULE_REWARDS


def bind(name: str, params: dict[str, Any], env, resources: str | Path):
    """A registered objective bound to its parameters; KeyError if unknown, ValueError for bad params."""
    from pipeline_lib.tasks.rewards import Reward

    if name not in REWARDS:
        raise KeyError(name)
    try:
        fn = molecule_reward(name, params)
    except TypeError as err:
        raise ValueError(f"reward {name!r}: bad params {params}: {err}") from err
    return Reward(lambda x: torch.as_tensor(fn(env.smiles(x)), dtype=torch.float32, device=x.device))


def data_files(name: str, params: dict[str, Any], resources: str | Path) -> list[Path]:
    """The RDKit objectives read no fetched data."""
    return []


def fetch(path: str | Path) -> None:
    raise ValueError(f"molecule rewards fetch no data ({path})")


def reference_modes(name: str, params: dict, env):
    """This domain's rewards have no mode set of their own."""
    raise ValueError(f"reward {name!r} has no mode set of its own")
