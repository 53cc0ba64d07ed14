"""The throughput benchmark runs end to end and prints its ratio table (its figures are read, never timed, here)."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_prints_each_ratio_as_the_median_of_its_rounds(tmp_path: Path) -> None:
    runs = tmp_path / "grid16/pretrain/full"
    runs.mkdir(parents=True)
    (runs / "seed0.tsv").write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                                    "100.0\t0:01:40\t500\t0\t0\t0\t0\t0\t90\t95.0\n")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--batches", "8", "--steps", "6", "--warmup", "1",
         "--rounds", "3", "--ot-warmup", "1", "--pretrain-envs", "--tfbind", "", "--rule-times", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    for ratio in ("step / bare = ", "with the loss's backward ", "settings): "):  # DB/bare, floor/bare, OC-GFN/DB
        line = next(line for line in lines if ratio in line)
        median, lo, hi = _ratio_and_range(line.split(ratio)[1].split("ms/step, ")[-1])
        assert lo <= median <= hi, line
    compiled = next(line for line in lines if "torch.compile of a rollout step" in line)
    if "unavailable here" not in compiled:  # where no C++ compiler is installed, the line says why instead
        median, lo, hi = _ratio_and_range(compiled.split("compiled / eager = ")[1])
        assert lo <= median <= hi and "eager" in compiled and "first call (compiling)" in compiled, compiled
    table = lines[lines.index(next(line for line in lines if line.startswith("--- the ratios, medians of 3"))) + 1:]
    header, values = table[0].split(), table[1].split()
    assert header[:2] == ["batch", "grid"] and values[0] == "8"
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in values)
    assert "total: 1 jobs, 100 s of job wall-clock, 95 s CPU" in out  # the workflow run's per-rule time


def _ratio_and_range(text: str) -> tuple[float, float, float]:
    """'3.40x (rounds 3.30-4.93) ...' -> (3.40, 3.30, 4.93)."""
    median, rest = text.split("x (rounds ", 1)
    lo, hi = rest.split(")", 1)[0].split("-")
    return float(median), float(lo), float(hi)
