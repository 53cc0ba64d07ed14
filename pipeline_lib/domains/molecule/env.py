"""Molecules as SELFIES token sequences: every string over a robust alphabet decodes to a valid molecule.

The MDP is the append-only sequence environment (a tree: one trajectory per token string) with a stop
action from the first token on. Different token strings can decode to the same molecule, so the
molecule a string stands for is its canonical SMILES (RDKit): that is what rewards receive, what
counts as a distinct object, and what diversity is measured on.
"""
from __future__ import annotations

from typing import Any

import torch

from pipeline_lib.core.env import ENUMERABLE, MOLECULES
from pipeline_lib.domains.molecule import chem
from pipeline_lib.domains.sequence.env import Sequence


class Molecule(Sequence):
    """SELFIES strings of 1..``length`` tokens over ``alphabet`` (default chem.SELFIES_ALPHABET)."""

    rewards_module = "pipeline_lib.domains.molecule.rewards"
    descriptors_module = "pipeline_lib.domains.molecule.descriptors"

    def __init__(self, length: int = 20, alphabet: list[str] | None = None, min_length: int = 1,
                 device: torch.device | str = "cpu") -> None:
        alphabet = list(chem.SELFIES_ALPHABET if alphabet is None else alphabet)
        robust = chem.sf.get_semantic_robust_alphabet()
        unknown = [t for t in alphabet if t not in robust]
        if unknown:
            raise ValueError(f"alphabet: {unknown} are not robust SELFIES tokens "
                             "(selfies.get_semantic_robust_alphabet())")
        super().__init__(alphabet, length, min_length, "append", device)
        self._smiles: dict[str, str] = {}  # token string -> canonical SMILES, computed once each
        self._fingerprints: dict = {}  # canonical SMILES -> Morgan fingerprint

    figure_kinds: tuple[str, ...] = ("molecules",)  # figures the report draws for this domain (report/plots.py)
    per_task_report = True  # report tables list each task apart (objectives on different scales)

    def capabilities(self) -> dict[str, str | None]:
        # distinct objects are molecules (canonical SMILES), not token strings: tables over the strings (the exact
        # target, relative and local-optimum modes) would count a molecule once per string that spells it
        return {**super().capabilities(), MOLECULES: None,
                ENUMERABLE: "distinct objects are molecules, not token strings: a table over the strings would count "
                            "a molecule once per SELFIES string that spells it"}

    def describe(self, states: torch.Tensor) -> dict[str, Any]:
        return {"sequence": self.decode(states), "smiles": self.smiles(states)}

    def smiles(self, states: torch.Tensor) -> list[str]:
        """Canonical SMILES of each token string ('' if it decodes to no atom)."""
        out = []
        for s in self.decode(states):
            if s not in self._smiles:
                self._smiles[s] = chem.canonical(s)
            out.append(self._smiles[s])
        return out

    def from_objects(self, objects: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The token strings of the SMILES whose (kekulised) SELFIES use only this environment's tokens and
        ``min_length`` to ``length`` of them, and which did (data sets: ``datasets.prepare``)."""
        # an unreadable SMILES becomes '', which has no tokens and so never fits (min_length >= 1)
        return super().from_objects([chem.selfies_of(s) or "" for s in objects])

    def check_outcomes(self) -> torch.Tensor:
        """Objects the config check adds to its random sample of a reward: the empty molecule ('', a string of
        ``min_length`` tokens that decodes to no atom, about 3% of random strings), which a plug-in written for real
        molecules meets first (none where no token decodes to nothing: no string over the alphabet does)."""
        empty = [t * self.min_length for t in self.alphabet if chem.canonical(t * self.min_length) == ""][:1]
        states, _ = Sequence.from_objects(self, empty)
        return states

    def similarity(self, smiles: list[str], references: list[str]):
        """Tanimoto similarities [len(smiles), len(references)] of Morgan fingerprints."""
        return chem.tanimoto(smiles, references, self._fingerprints)

    def objects(self, states: torch.Tensor) -> list[str]:
        """What a reward plug-in receives: canonical SMILES."""
        return self.smiles(states)

    def object_keys(self, states: torch.Tensor) -> list[str]:
        """Distinct objects are distinct molecules, whatever string produced them."""
        return self.smiles(states)

    def diversity(self, states: torch.Tensor) -> float:
        """Internal diversity: 1 - mean pairwise Tanimoto similarity of Morgan fingerprints."""
        return chem.internal_diversity(self.smiles(states), self._fingerprints)

    def sample_metrics(self, states: torch.Tensor, top: torch.Tensor) -> dict[str, float]:
        """Validity of all samples and distinct Bemis-Murcko scaffolds among the top ones (acyclic
        molecules share the empty scaffold, which counts as one)."""
        smiles = self.smiles(states)
        return {"validity": sum(bool(s) for s in smiles) / max(1, len(smiles)),
                "top100_scaffolds": len({chem.scaffold(s) for s in self.smiles(top) if s})}
