"""Parquet results and checkpoints, both written atomically (write to a temp file, then rename)."""
from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pandas as pd

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: the permissions any other new file of this process gets


def atomic_write(path: Path, write) -> None:
    """Write via a temp file in the same folder, then rename: readers never see a half-written file. The temp files
    that a kill left mid-write of ``path`` go first (each file has one writer: Snakemake runs a job once, and a
    training job holds its folder, ``job_lock``), and the file gets the permissions of any other new file, not
    mkstemp's owner-only ones (results shared on a cluster stay readable to the group)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{'?' * 8}.tmp"):  # mkstemp's 8 random characters
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as f:  # on disk before the rename: after a lost node no empty file takes its place
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_parquet(df: pd.DataFrame, path: str | Path, **meta: Any) -> None:
    """Write a tidy table; ``meta`` (seed, resolved config, ...) is stored in the file's metadata."""
    df = df.reset_index(drop=True)
    df.attrs = {}
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    if meta:
        extra = {b"pipeline_meta": json.dumps(meta, sort_keys=True, default=str).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a table written by ``write_parquet``, with a clear error for a missing or unreadable file (writes are
    atomic, so that is a file damaged or replaced by hand)."""
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results table {path} does not exist; run the rule that writes it")
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"results table {path} is truncated or corrupt ({type(err).__name__}: {err}); remake it: "
                         f"snakemake --cores 8 all --forcerun {path} (its job and what reads it rerun)") from err


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata ``write_parquet`` stored (seed, config)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(b"pipeline_meta")
    return json.loads(raw) if raw else {}


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """torch.save atomically, so a job killed mid-write leaves the previous checkpoint intact."""
    import torch  # here, not at the top: figure and summary jobs read parquet only and start without it

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object, not the path: torch names the archive after a path it is given,
            torch.save(obj, f)      # and a random temporary name would make equal checkpoints differ in bytes

    atomic_write(Path(path), write)


def drop_finished_checkpoints(root: str | Path, outputs: dict[str, list[str]],
                              incomplete: Callable[[list[Path]], bool] = lambda files: False) -> list[Path]:
    """Remove the checkpoints of training jobs that have finished: ``X.ckpt`` (and ``X.ckpt.stale``, one set aside
    for other inputs) whose job's outputs (``outputs[X]``, file names in the same folder) all exist, were written
    after it, and are not held as ``incomplete`` (the workflow asks Snakemake: a job it started and has not recorded
    as done, which ``--rerun-incomplete`` runs again). The workflow calls this only when a run succeeds
    (``onsuccess``): a run stopped early keeps them all, so a job it finished still restores its trained state when
    the same command, ``--forcerun`` included, runs again; a checkpoint of an unfinished or failed job (outputs
    missing or older) stays for its rerun. Returns the removed paths."""
    removed = []
    for checkpoint in sorted([*Path(root).rglob("*.ckpt"), *Path(root).rglob("*.ckpt.stale")]):
        names = outputs.get(checkpoint.name[: checkpoint.name.rindex(".ckpt")])
        if not names:
            continue
        written = checkpoint.stat().st_mtime
        files = [checkpoint.parent / name for name in names]
        if all(f.is_file() and f.stat().st_mtime >= written for f in files) and not incomplete(files):
            checkpoint.unlink()
            removed.append(checkpoint)
    return removed


@contextlib.contextmanager
def job_lock(outputs: list[str | Path]) -> Iterator[None]:
    """Hold a training job's folder (a lock file beside its ``outputs``) for the job's whole run. A second process
    of the same job, e.g. a new run's while the job of a Snakemake killed alone still runs, waits here instead of
    training beside it and writing the same files; it then resumes from the finished checkpoint. The lock file stays
    (removing it would let a waiting process and a new one each hold a lock of their own). Where the file system has
    no locks, the job runs without one (logged)."""
    folder = Path(outputs[0]).parent
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another process is running this job (%s; a run stopped without its jobs?): waiting for it "
                        "to end, then resuming from its checkpoint", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("the other process has ended")
        except OSError as err:  # e.g. ENOLCK on a network file system without locks
            log.warning("no lock on %s (%s): running unlocked", folder, err)
        yield


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """torch.load with a clear error naming the file when it is truncated or corrupt."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise RuntimeError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {err}); "
                           "delete it to restart that job from scratch") from err


PRETRAIN_KEYS = ("env", "variant", "seed")
ADAPTATION_KEYS = ("env", "task", "method", "seed")
TABLE_KEYS = {"pretrain": PRETRAIN_KEYS, "pretrain_bands": PRETRAIN_KEYS, "outcomes": PRETRAIN_KEYS,
              "windows": PRETRAIN_KEYS, "window_samples": PRETRAIN_KEYS, "curves": ADAPTATION_KEYS,
              "evaluation": ADAPTATION_KEYS, "samples": ADAPTATION_KEYS, "targets": ("env", "task")}


def gather(paths: list[str], keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """The per-job tables ``paths`` as one, in their order. With no job to gather (no descriptor variant, no
    pre-training), the table is empty but has its ``keys`` columns, so a reader's ``df[df.env == ...]`` selects
    nothing instead of failing."""
    frames = [read_parquet(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(keys))


def collect(paths: list[str], out: str, keys: tuple[str, ...] = ()) -> None:
    """Write the per-job tables ``paths`` as one (``gather``): the tables the summary reads and users open. Figures
    gather their own domain's jobs (the same rows), so a rerun task redraws only its domain's figures. Its metadata
    names the per-job files it gathers (``collected_from``), whose own metadata hold each job's seed and resolved
    config."""
    write_parquet(gather(paths, keys), out, collected_from=[str(p) for p in paths])
