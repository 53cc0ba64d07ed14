"""Where a workflow run's time went: per rule, the jobs, their wall-clock and CPU seconds and peak memory,
summed from the benchmark files Snakemake wrote (one per job, ``results/benchmarks/**.tsv``).

    python -m benchmarks.rule_times [results/benchmarks]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def rule_times(folder: str | Path) -> pd.DataFrame:
    """One row per rule: jobs, wall-clock s, CPU s, the slowest job's s and the largest peak RSS (MB).
    Benchmark paths are ``<env or 'data'>/<rule>/...`` or ``<env>/<rule>.tsv`` (one job per domain) or a
    top-level ``<rule>.tsv`` (the workflow's convention), so the rule is the second part of the path, or the
    only one."""
    rows = []
    for path in sorted(Path(folder).rglob("*.tsv")):
        parts = path.relative_to(folder).parts
        rule = (parts[1] if len(parts) > 1 else parts[0]).removesuffix(".tsv")
        table = pd.read_csv(path, sep="\t")
        rows.append({"rule": rule, "wall_s": float(table["s"].iloc[-1]), "cpu_s": float(table["cpu_time"].iloc[-1]),
                     "max_rss_mb": float(table["max_rss"].iloc[-1]) if "max_rss" in table else float("nan")})
    if not rows:
        raise FileNotFoundError(f"no benchmark files under {folder}; run the workflow first")
    df = pd.DataFrame(rows)
    out = df.groupby("rule").agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                                 slowest_s=("wall_s", "max"), max_rss_mb=("max_rss_mb", "max"))
    return out.sort_values("cpu_s", ascending=False).reset_index()


def print_rule_times(folder: str | Path) -> None:
    """Print the per-rule table and its totals."""
    table = rule_times(folder)
    total = table[["jobs", "wall_s", "cpu_s"]].sum()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.0f}"))
    print(f"total: {int(total['jobs'])} jobs, {total['wall_s']:.0f} s of job wall-clock, {total['cpu_s']:.0f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="results/benchmarks")
    print_rule_times(parser.parse_args().folder)


if __name__ == "__main__":
    main()
