"""Built-in molecule descriptors (phi(x) of ``pipeline_lib.descriptors``): RDKit properties of canonical SMILES."""
from __future__ import annotations

from typing import Callable

import numpy as np

DIMS = ("qed", "logp", "tpsa", "rings")
EDGES = {"qed": [0.3, 0.5, 0.7], "logp": [0.0, 2.0, 4.0], "tpsa": [40.0, 80.0], "rings": [0.5, 1.5, 2.5]}


def properties(dims: list[str] | tuple[str, ...] = DIMS) -> tuple[list[str], dict, Callable]:
    """QED, Crippen logP, TPSA and the ring count (a SMILES with no atom: all 0). Default bins 4 x 4 x 3 x 4
    = 192 outcomes; ``dims`` keeps a subset."""
    unknown = [d for d in dims if d not in DIMS]
    if unknown:
        raise TypeError(f"dims {unknown}: expected some of {list(DIMS)}")

    def values(smiles: list[str]) -> np.ndarray:
        from rdkit.Chem import QED, Crippen, rdMolDescriptors

        from pipeline_lib.domains.molecule.chem import molecule

        out = np.zeros((len(smiles), len(dims)))
        for i, s in enumerate(smiles):
            mol = molecule(s) if s else None
            if mol is None:
                continue
            value = {"qed": lambda: QED.qed(mol), "logp": lambda: Crippen.MolLogP(mol),
                     "tpsa": lambda: rdMolDescriptors.CalcTPSA(mol),
                     "rings": lambda: rdMolDescriptors.CalcNumRings(mol)}
            out[i] = [value[d]() for d in dims]
        return out

    return list(dims), {d: EDGES[d] for d in dims}, values


DESCRIPTORS = {"properties": properties}
