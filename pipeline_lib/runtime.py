"""Device choice, seeding, threads and CPU slots: explicit, recorded, never global hidden state."""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


def select_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without one, or for a GPU number this process cannot
    see (a scheduler that grants one GPU per job shows it as cuda:0), is an error naming what it sees."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device: {requested!r} requested but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"device: {requested!r}, but torch sees {torch.cuda.device_count()} CUDA device(s) "
                               f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); where a "
                               f"scheduler assigns each job its GPU, use device: cuda")
    return device


def seed_everything(seed: int, device: torch.device) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a generator for sampling on ``device``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def configure_process(threads: int) -> None:
    """Set up a training job's process: torch's intra-op threads matched to what the scheduler granted the job,
    and freed memory kept for reuse (``keep_freed_memory``)."""
    torch.set_num_threads(max(1, int(threads)))
    keep_freed_memory()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Have glibc's malloc serve allocations up to 1 GiB from its heap and keep up to 1 GiB of freed memory there,
    instead of mapping each large block afresh and handing it back on free. A training step allocates the same
    large tensors every step (one-hot features of thousands of states: 33 MB on AMP), and by default each one
    is a new mapping whose every 4 KiB page costs a page fault on first touch, several microseconds apiece on a
    virtual machine: 2,700 to 4,800 faults per AMP pre-training step, 150 to 300 with this, and 4 to 10% less CPU
    per step (benchmarks/throughput.py prints the faults). The process's memory stays at its peak instead of
    shrinking between steps. Returns whether the C library took the settings (False off glibc: nothing changes)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))


def slot_count(setting: int | str) -> int:
    """The ``cpu_slots`` config value as a number: ``auto`` is this host's CPU count, 0 no limit."""
    if setting == "auto":
        return os.cpu_count() or 1
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ValueError(f"cpu_slots: expected 'auto' or an integer >= 0, got {setting!r}")
    return setting


@contextlib.contextmanager
def cpu_slots(threads: int, setting: int | str, poll_s: float = 1.0, where: Path | None = None):
    """Hold ``threads`` of this host's CPU slots (``slot_count(setting)``; 0: no limit) while the body runs.

    Snakemake's ``--cores`` counts what the user asked for, not what the host has: ``--cores 8`` on 2 cores
    runs 8 training jobs at once, and the time-slicing costs 20 to 40% more CPU per step (measured with
    the pre-training step: caches). Training jobs queue here instead, on flock()ed files in a host-local
    directory (``where``, default under the temporary directory), which the kernel releases however the
    process ends. ``poll_s``: how often a waiting job retries (pre-training, the critical path, polls
    faster)."""
    slots = slot_count(setting)
    if slots == 0:
        yield
        return
    need = min(max(1, int(threads)), slots)
    where = where or Path(tempfile.gettempdir()) / f"ocgfn-cpu-slots-{os.getuid()}"
    where.mkdir(parents=True, exist_ok=True)
    waiting_since = None
    while (held := _take_slots(where, slots, need)) is None:
        if waiting_since is None:
            log.info("waiting for %d of this host's %d CPU slots (cpu_slots in the config)", need, slots)
            waiting_since = time.monotonic()
        time.sleep(poll_s)
    if waiting_since is not None:
        log.info("CPU slots free after %.0f s", time.monotonic() - waiting_since)
    try:
        yield
    finally:
        for handle in held:
            handle.close()


def _take_slots(where: Path, slots: int, need: int) -> list | None:
    """``need`` of the ``slots`` lock files under ``where``, locked, or None (and nothing held): all or
    nothing, since two jobs holding half of what each needs would wait forever."""
    held = []
    for i in range(slots):
        handle = open(where / f"slot{i}", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        held.append(handle)
        if len(held) == need:
            return held
    for handle in held:
        handle.close()
    return None
