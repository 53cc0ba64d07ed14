"""The summary tables are computed from the collected parquet tables, whatever domains they mix."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline_lib.report import summary as report


def _curves() -> pd.DataFrame:
    rows = []
    for seed in (0, 1):
        for method, kind, modes in (("scratch", "scratch", [1, 3]), ("mcmc", "mcmc", [2, 3 + seed]),
                                    ("ocgfn", "amortized", [0, 2])):
            for calls, found in zip((100, 200), modes):
                rows.append({"env": "tf", "task": "a", "method": method, "kind": kind, "seed": seed, "step": calls,
                             "reward_calls": calls, "modes_found": found, "top100_reward": found / 10,
                             "top100_diversity": 1.0})
    return pd.DataFrame(rows)


def test_sequence_table_at_a_budget_with_win_rates() -> None:
    table, used = report.sequence_table(_curves(), "tf", 150)
    assert used == 150
    rows = table.set_index("method")
    assert rows.loc["mcmc", "modes_found"].startswith("2 ")
    # mcmc beats scratch (2 > 1) on both seeds at 150 calls; ocgfn loses both.
    assert rows.loc["mcmc", "win_rate_vs_scratch"] == 1.0
    assert rows.loc["ocgfn", "win_rate_vs_scratch"] == 0.0
    assert rows.loc["scratch", "win_rate_vs_scratch"] == 0.5
    table, used = report.sequence_table(_curves(), "tf", None)  # the largest budget all reached
    assert used == 200
    rows = table.set_index("method")
    assert rows.loc["mcmc", "win_rate_vs_scratch"] == 0.75  # a tie on seed 0 and a win on seed 1


def test_summary_page_skips_an_environment_that_only_pre_trains(tmp_path: Path) -> None:
    pretrain = pd.DataFrame({"env": ["tf", "pa"], "variant": "full", "seed": 0, "step": 10,
                             "success_sample": [0.9, 0.4], "success_greedy": [1.0, 0.8]})
    evaluation = pd.DataFrame({"env": ["tf"], "task": "a", "method": "mcmc", "seed": 0, "modes_in_samples": 3.0,
                               "top100_reward": 0.5, "top100_diversity": 2.0, "unique_fraction": 0.9})
    environment = pd.DataFrame({"torch": ["2"], "device": ["cpu"]})
    html, md = tmp_path / "s.html", tmp_path / "s.md"
    report.summary_page(pretrain, evaluation, _curves(), environment, [], str(html), str(md),
                        budgets={"tf": 150, "pa": None})
    text = md.read_text()
    assert "tf: objects queried within 150 reward calls" in text
    assert "pa:" not in text and "| pa " in text  # in the pre-training table only
