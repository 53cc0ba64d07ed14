"""Built-in sequence descriptors (phi(x) of ``pipeline_lib.descriptors``) on the decoded strings."""
from __future__ import annotations

from typing import Callable

import numpy as np

# Kyte & Doolittle (1982) hydropathy per amino acid; the peptide's is the mean (GRAVY)
KYTE_DOOLITTLE = {"A": 1.8, "R": -4.5, "N": -3.5, "D": -3.5, "C": 2.5, "Q": -3.5, "E": -3.5, "G": -0.4, "H": -3.2,
                  "I": 4.5, "L": 3.8, "K": -3.9, "M": 1.9, "F": 2.8, "P": -1.6, "S": -0.8, "T": -0.7, "W": -0.9,
                  "Y": -1.3, "V": 4.2}


def peptide(length_edges: list[float] | None = None) -> tuple[list[str], dict, Callable]:
    """Length, net charge at neutral pH (K + R - D - E) and mean Kyte-Doolittle hydropathy of amino-acid
    strings. Default bins 4 x 5 x 4 = 80 outcomes."""
    edges = {"length": length_edges or [15.0, 25.0, 35.0], "charge": [0.0, 2.0, 4.0, 6.0],
             "hydropathy": [-1.0, 0.0, 1.0]}

    def values(strings: list[str]) -> np.ndarray:
        unknown = sorted({c for s in strings for c in s} - set(KYTE_DOOLITTLE))
        if unknown:
            raise ValueError(f"peptide descriptor: {unknown} are not amino acids")
        return np.array([[len(s), sum(s.count(c) for c in "KR") - sum(s.count(c) for c in "DE"),
                          np.mean([KYTE_DOOLITTLE[c] for c in s]) if s else 0.0] for s in strings]).reshape(-1, 3)

    return ["length", "charge", "hydropathy"], edges, values


def composition(tokens: str | list[str], length_edges: list[float], share_edges: list[float] | None = None
                ) -> tuple[list[str], dict, Callable]:
    """Length and the share of positions holding one of ``tokens`` (e.g. '1' on bits, 'GC' on RNA) of
    single-character strings; ``length_edges`` is required (it depends on the environment)."""
    wanted = set(tokens)
    edges = {"length": length_edges, "share": share_edges or [0.25, 0.5, 0.75]}

    def values(strings: list[str]) -> np.ndarray:
        return np.array([[len(s), sum(c in wanted for c in s) / len(s) if s else 0.0]
                         for s in strings]).reshape(-1, 2)

    return ["length", "share"], edges, values


DESCRIPTORS = {"peptide": peptide, "composition": composition}
