"""The per-rule time summary reads Snakemake benchmark files (benchmarks/ is outside the package)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _module():
    spec = importlib.util.spec_from_file_location("rule_times", ROOT / "benchmarks/rule_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rule_times_sums_jobs_per_rule(tmp_path: Path) -> None:
    for rel, seconds, cpu in (("grid16/finetune/ring/exact/seed0.tsv", 10.0, 8.0),
                              ("grid16/finetune/ring/mcmc/seed0.tsv", 30.0, 29.0),
                              ("grid16/pretrain/full/seed0.tsv", 100.0, 95.0),
                              ("data/prepare_data/tfbind8/x.txt.tsv", 2.0, 1.0),
                              ("grid16/figure_search.tsv", 3.0, 2.5), ("bits16/figure_search.tsv", 3.0, 2.0),
                              ("summary.tsv", 4.0, 3.0)):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + f"{seconds}\t0:00:10\t500\t0\t0\t0\t0\t0\t90\t{cpu}\n")
    table = _module().rule_times(tmp_path).set_index("rule")
    assert table.loc["finetune", "jobs"] == 2 and table.loc["finetune", "cpu_s"] == 37.0
    assert table.loc["finetune", "slowest_s"] == 30.0 and table.loc["pretrain", "wall_s"] == 100.0
    assert table.loc["figure_search", "jobs"] == 2 and table.loc["figure_search", "cpu_s"] == 4.5  # <env>/<rule>.tsv
    assert table.loc["summary", "jobs"] == 1  # a top-level <rule>.tsv
    assert list(table.index) == ["pretrain", "finetune", "figure_search", "summary", "prepare_data"]  # by CPU time
