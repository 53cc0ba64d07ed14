"""A bring-your-own molecule reward: drug-likeness (QED) of molecules with at least ``rings`` rings.

The pipeline calls ``ring_drug_likeness(smiles, **params)`` with a list of canonical SMILES ('' for a
string that decodes to no atom) and expects one strictly positive float per molecule.
"""
from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import QED, rdMolDescriptors


def ring_drug_likeness(smiles: list[str], rings: int = 1, penalty: float = 0.1) -> list[float]:
    values = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s) if s else None
        if mol is None:
            values.append(1e-3)
            continue
        enough = rdMolDescriptors.CalcNumRings(mol) >= rings
        values.append(1e-3 + QED.qed(mol) * (1.0 if enough else penalty))
    return values
