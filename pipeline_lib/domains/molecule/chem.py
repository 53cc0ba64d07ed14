"""Molecules with RDKit: SELFIES decoding, canonical SMILES, fingerprints and property objectives.

Every objective maps canonical SMILES to values in [0, 1] (0 for the empty molecule), computed once
per distinct molecule (a dict keyed by canonical SMILES, kept for the job) because RDKit descriptors cost about
a millisecond each. Rewards add a positive ``floor`` so that log R stays finite. Definitions, with
their sources, are in config/README.md (molecule rewards).
"""
from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import selfies as sf
from rdkit import Chem, DataStructs, RDConfig, RDLogger
from rdkit.Chem import QED, Crippen, Descriptors, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold

from pipeline_lib.domains import check_kwargs

RDLogger.DisableLog("rdApp.*")  # a sampler proposes odd molecules; RDKit's warnings would flood the logs

# Robust SELFIES tokens for C, N, O, F, S and Cl with single, double and triple bonds, ring closures
# and branches up to 17 atoms long: every string over them decodes to a valid molecule.
SELFIES_ALPHABET = ["[C]", "[=C]", "[#C]", "[N]", "[=N]", "[#N]", "[O]", "[=O]", "[F]", "[S]", "[=S]", "[Cl]",
                    "[Ring1]", "[=Ring1]", "[Branch1]", "[=Branch1]", "[#Branch1]"]

# Reference drugs for the similarity objectives (SMILES from PubChem).
REFERENCE_DRUGS = {
    "aspirin": "CC(=O)OC1=CC=CC=C1C(=O)O",
    "paracetamol": "CC(=O)NC1=CC=C(C=C1)O",
    "ibuprofen": "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O",
    "caffeine": "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "metformin": "CN(C)C(=N)N=C(N)N",
    "nicotine": "CN1CCCC1C2=CN=CC=C2",
}

_MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


def canonical(selfies: str) -> str:
    """Canonical SMILES of a SELFIES string ('' when it decodes to no atoms or RDKit rejects it)."""
    try:
        smiles = sf.decoder(selfies)
    except sf.DecoderError:
        return ""
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    return Chem.MolToSmiles(mol) if mol is not None and mol.GetNumAtoms() else ""


def selfies_of(smiles: str) -> str | None:
    """The SELFIES string of a SMILES (kekulised by the encoder; None when RDKit or SELFIES cannot read it)."""
    if not smiles or Chem.MolFromSmiles(smiles) is None:
        return None
    try:
        return sf.encoder(smiles)
    except sf.EncoderError:
        return None


def molecule(smiles: str) -> Chem.Mol | None:
    return Chem.MolFromSmiles(smiles) if smiles else None


def fingerprint(smiles: str, cache: dict | None = None):
    """Morgan fingerprint (radius 2, 2048 bits), the usual choice for Tanimoto similarity; ``cache`` is a dict
    its owner keeps (the molecule environment, a mode counter) so each molecule is fingerprinted once."""
    if cache is not None and smiles in cache:
        return cache[smiles]
    mol = molecule(smiles)
    fp = _MORGAN.GetFingerprint(mol) if mol is not None else None
    if cache is not None:
        cache[smiles] = fp
    return fp


def tanimoto(smiles: Sequence[str], references: Sequence[str], cache: dict | None = None) -> np.ndarray:
    """Tanimoto similarities [len(smiles), len(references)] of Morgan fingerprints (0 for empty molecules)."""
    ref = [fingerprint(r, cache) for r in references]
    out = np.zeros((len(smiles), len(references)))
    valid = [j for j, f in enumerate(ref) if f is not None]
    for i, s in enumerate(smiles):
        fp = fingerprint(s, cache)
        if fp is not None and valid:
            out[i, valid] = DataStructs.BulkTanimotoSimilarity(fp, [ref[j] for j in valid])
    return out


def internal_diversity(smiles: Sequence[str], cache: dict | None = None) -> float:
    """1 - mean pairwise Tanimoto similarity of distinct molecules (0 for fewer than two)."""
    if len(smiles) < 2:
        return 0.0
    sim = tanimoto(smiles, smiles, cache)
    n = len(smiles)
    return float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))


def scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES ('' for acyclic molecules)."""
    mol = molecule(smiles)
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol) if mol is not None else ""


# ----------------------------------------------------------------------------------------- objectives
def _per_molecule(fn: Callable[[Chem.Mol], float]) -> Callable[[Sequence[str]], np.ndarray]:
    def one(s: str) -> float:
        mol = molecule(s)
        return fn(mol) if mol is not None else 0.0

    @functools.wraps(fn)
    def batch(smiles: Sequence[str]) -> np.ndarray:
        return np.array([one(s) for s in smiles], dtype=np.float64)
    del batch.__wrapped__  # its signature is its own (smiles), not the per-molecule function's (parameter checks)
    return batch


def _sascorer():
    """RDKit's Contrib SA scorer (Ertl and Schuffenhauer 2009); Contrib is not a package, so import by path."""
    path = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if path not in sys.path:
        sys.path.append(path)
    import sascorer  # noqa: PLC0415
    return sascorer


def sa_score(mol: Chem.Mol) -> float:
    """The raw synthetic accessibility score: 1 (easy) to 10 (hard)."""
    return float(_sascorer().calculateScore(mol))


def check_window(name: str, low: float, high: float, width: float) -> None:
    """A window's bounds: low <= high and width > 0 (width 0 divided by zero only once a molecule fell inside)."""
    if not low <= high:
        raise ValueError(f"{name}: expected low <= high, got low={low}, high={high}")
    if not width > 0:
        raise ValueError(f"{name}: width must be > 0 (the fall-off outside [low, high]), got {width}")


def window(value: float, low: float, high: float, width: float) -> float:
    """1 inside [low, high], a Gaussian fall-off of ``width`` outside."""
    gap = max(low - value, 0.0, value - high)
    return math.exp(-0.5 * (gap / width) ** 2)


qed = _per_molecule(QED.qed)
sa = _per_molecule(lambda m: (10.0 - sa_score(m)) / 9.0)
_logp = _per_molecule(Crippen.MolLogP)
_tpsa = _per_molecule(Descriptors.TPSA)


def _in_window(values: np.ndarray, smiles: Sequence[str], low: float, high: float, width: float) -> np.ndarray:
    """``window`` of each descriptor value; empty molecules score 0."""
    valid = np.array([bool(s) for s in smiles])
    return np.where(valid, [window(v, low, high, width) for v in values], 0.0)


def logp(smiles: Sequence[str], low: float = 1.0, high: float = 3.0, width: float = 1.0) -> np.ndarray:
    """Crippen logP inside a window (1 inside, Gaussian fall-off outside); empty molecules score 0."""
    check_window("logp", low, high, width)
    return _in_window(_logp(smiles), smiles, low, high, width)


def tpsa(smiles: Sequence[str], low: float = 40.0, high: float = 90.0, width: float = 20.0) -> np.ndarray:
    """Topological polar surface area (A^2) inside a window; empty molecules score 0."""
    check_window("tpsa", low, high, width)
    return _in_window(_tpsa(smiles), smiles, low, high, width)


def _reference(name: str) -> str:
    """Canonical SMILES of a reference drug name or SMILES."""
    if not isinstance(name, str):  # YAML 1.1 reads NO / ON / yes as booleans, 123 as a number
        raise ValueError(f"similarity: reference {name!r} is not a string (a drug name or a SMILES; quote it in YAML)")
    smiles = REFERENCE_DRUGS.get(name, name)
    # RDKit reads '' as a molecule with no atom and text after a space as the molecule's name: refuse both
    mol = Chem.MolFromSmiles(smiles) if smiles.strip() and not any(c.isspace() for c in smiles) else None
    if mol is None or not mol.GetNumAtoms():
        raise ValueError(f"similarity: reference {name!r} is neither a known drug {sorted(REFERENCE_DRUGS)} "
                         "nor a valid SMILES")
    return Chem.MolToSmiles(mol)


def similarity(smiles: Sequence[str], references: Sequence[str] | str = "aspirin",
               aggregate: str = "max") -> np.ndarray:
    """Tanimoto similarity to reference drugs (names in REFERENCE_DRUGS or SMILES), max or mean over them."""
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("similarity: references must name at least one drug or SMILES")
    resolved = [_reference(r) for r in refs]
    if aggregate not in ("max", "mean"):
        raise ValueError(f"similarity: aggregate must be 'max' or 'mean', got {aggregate!r}")
    sim = tanimoto(smiles, resolved)
    return sim.max(1) if aggregate == "max" else sim.mean(1)


OBJECTIVES: dict[str, Callable[..., np.ndarray]] = {"qed": qed, "sa": sa, "logp": logp, "tpsa": tpsa,
                                                     "similarity": similarity}


def product(smiles: Sequence[str], components: Sequence[dict[str, Any]] = ()) -> np.ndarray:
    """The product of objectives, e.g. [{name: qed}, {name: sa}, {name: similarity, params: {...}}]."""
    if not components:
        raise ValueError("product: params.components must list at least one objective {name, params}")
    out = np.ones(len(smiles))
    for i, c in enumerate(components):
        if not isinstance(c, dict) or c.get("name") not in OBJECTIVES:
            raise ValueError(f"product: each component needs name in {sorted(OBJECTIVES)}, got {c!r}")
        stray = sorted(set(c) - {"name", "params"})
        if stray:
            raise ValueError(f"product: components[{i}] ({c['name']}): unknown keys {stray}; an objective's "
                             "parameters go under params, e.g. {name: similarity, params: {references: [caffeine]}}")
        own = c.get("params", {})
        if "floor" in own:
            raise ValueError(f"product: components[{i}] ({c['name']}): floor is the product's own parameter (one floor "
                             f"keeps the product > 0), not a component's; move it to the task's params")
        check_kwargs(OBJECTIVES[c["name"]], own, f"components[{i}].params", ("smiles",), f"objective {c['name']!r}")
        out = out * OBJECTIVES[c["name"]](smiles, **own)
    return out


MOLECULE_REWARDS: dict[str, Callable[..., np.ndarray]] = {**OBJECTIVES, "product": product}


def molecule_reward(name: str, params: dict[str, Any]) -> Callable[[Sequence[str]], np.ndarray]:
    """Bind an objective to its parameters, plus ``floor`` (default 1e-3) so that every reward is > 0. The
    bound reward computes each distinct SMILES once and keeps the values (its own cache)."""
    params = dict(params)
    floor = params.pop("floor", 1e-3)
    if isinstance(floor, bool) or not isinstance(floor, (int, float)):
        raise ValueError(f"reward {name!r}: floor: expected float, got {floor!r}")
    floor = float(floor)
    if not floor > 0:
        raise ValueError(f"reward {name!r}: floor must be > 0 so that rewards stay strictly positive, got {floor}")
    fn = MOLECULE_REWARDS[name]
    check_kwargs(fn, params, "", ("smiles",), f"reward {name!r}")  # names and type hints, naming the key
    fn([""], **params)  # bad parameters fail here, with the objective's own message
    values: dict[str, float] = {}

    def reward(smiles: Sequence[str]) -> np.ndarray:
        new = sorted({s for s in smiles if s not in values})
        if new:
            values.update(zip(new, fn(new, **params) + floor))
        return np.array([values[s] for s in smiles], dtype=np.float64)
    return reward
