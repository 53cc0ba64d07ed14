"""The summary tables are computed from the collected parquet tables, whatever domains they mix."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline_lib.report import page
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
    assert rows.loc["mcmc", "modes_found"] == "2" and rows.loc["mcmc", "n"] == 2  # equal over seeds: no interval
    # mcmc beats scratch (2 > 1) on both seeds at 150 calls; ocgfn loses both.
    assert rows.loc["mcmc", "win_rate_vs_scratch"] == 1.0
    assert rows.loc["ocgfn", "win_rate_vs_scratch"] == 0.0
    assert np.isnan(rows.loc["scratch", "win_rate_vs_scratch"])  # the baseline against itself: no win rate
    table, used = report.sequence_table(_curves(), "tf", None)  # the largest budget all reached
    assert used == 200
    rows = table.set_index("method")
    assert rows.loc["mcmc", "win_rate_vs_scratch"] == 0.75  # a tie on seed 0 and a win on seed 1


def test_sequence_table_compares_at_distinct_calls() -> None:
    """Where curves count distinct calls the table reads them (MCMC repeats itself: 300 calls, 100 distinct),
    says what each method used, and an amortized run with fewer gradient steps than scratch by the budget
    enters at its own larger budget, as in the verdict."""
    rows = []
    for seed in (0, 1):
        rows += [_row("t", seed, "scratch", "scratch", "", 100, 2, 0.3),
                 _row("t", seed, "scratch", "scratch", "", 200, 5, 0.3),
                 {**_row("t", seed, "mcmc", "mcmc", "", 100, 7, 0.4), "reward_calls": 300},
                 {**_row("t", seed, "amortized", "amortized", "full", 100, 1, 0.2), "step": 1},
                 {**_row("t", seed, "amortized", "amortized", "full", 400, 9, 0.5), "step": 300}]
    table, used = report.sequence_table(pd.DataFrame(rows).assign(top100_diversity=1.0), "e", 150)
    rows = table.set_index("method")
    assert used == 150 and rows.loc["mcmc", "modes_found"] == "7" and rows.loc["scratch", "modes_found"] == "2"
    assert rows.loc["amortized", "modes_found"] == "9" and rows.loc["amortized", "unique_reward_calls"] == 400
    assert rows.loc["mcmc", "unique_reward_calls"] == 100 and (table["distinct_calls"] == 150).all()


def test_summary_page_skips_an_environment_that_only_pre_trains(tmp_path: Path) -> None:
    pretrain = pd.DataFrame({"env": ["tf", "pa"], "variant": "full", "seed": 0, "step": 10,
                             "success_sample": [0.9, 0.4], "success_greedy": [1.0, 0.8]})
    evaluation = pd.DataFrame({"env": ["tf"], "task": "a", "method": "mcmc", "seed": 0, "modes_in_samples": 3.0,
                               "top100_reward": 0.5, "top100_diversity": 2.0, "unique_fraction": 0.9})
    environment = pd.DataFrame({"torch": ["2"], "device": ["cpu"]})
    html, md = tmp_path / "s.html", tmp_path / "s.md"
    page.summary_page(pretrain, evaluation, _curves(), environment, [], str(html), str(md),
                      budgets={"tf": 150, "pa": None})
    text = md.read_text()
    assert "## tf" in text and "Objects queried within 150 reward calls" in text
    assert "## pa" not in text and "| pa " in text  # in the pre-training table only


def test_summary_page_of_a_run_without_pre_training(tmp_path: Path) -> None:
    """Every domain ``variants: []`` (baselines only): the pre-training table is empty, with no columns."""
    evaluation = pd.DataFrame({"env": ["tf"], "task": "a", "method": "mcmc", "seed": 0, "modes_in_samples": 3.0,
                               "top100_reward": 0.5, "top100_diversity": 2.0, "unique_fraction": 0.9})
    html, md = tmp_path / "s.html", tmp_path / "s.md"
    page.summary_page(pd.DataFrame(), evaluation, _curves(), pd.DataFrame({"torch": ["2"]}), [], str(html), str(md),
                      budgets={"tf": 150})
    text = md.read_text()
    assert "## tf" in text and "Pre-training: final success rate" not in text


def _row(task: str, seed: int, method: str, kind: str, pretrained: str, calls: int, modes: float,
         top: float) -> dict:
    return {"env": "e", "task": task, "seed": seed, "method": method, "kind": kind, "pretrained": pretrained,
            "step": calls, "reward_calls": 2 * calls, "unique_reward_calls": calls, "modes_found": modes,
            "top100_reward": top}


def test_each_oc_gfn_method_is_compared_with_its_own_control_twin() -> None:
    """Two amortized recipes, each with a control twin (the same config entry but ``pretrained`` and ``flow``):
    the verdict pairs each with its twin, never the best OC-GFN run of one recipe with the best control of
    another."""
    from pipeline_lib import plan

    config = {"finetune": {"methods": {
        "fast": {"kind": "amortized", "pretrained": "full", "flow": "learned",
                 "settings": {"steps": 40, "outcomes_per_transition": 1}},
        "fast_control": {"kind": "amortized", "pretrained": "control", "flow": "policy",
                         "settings": {"outcomes_per_transition": 1, "steps": 40}},
        "own": {"kind": "amortized", "pretrained": "full", "settings": {"outcomes": "own"}},
        "own_control": {"kind": "amortized", "pretrained": "control", "settings": {"outcomes": "own"}},
        "lonely": {"kind": "amortized", "pretrained": "full", "settings": {"steps": 7}},
        "ft": {"kind": "finetuned", "pretrained": "full", "settings": {"loss": "tb"}},
        "ft_random": {"kind": "finetuned", "pretrained": "full", "settings": {"init": "random", "loss": "tb"}},
        "scratch": {"kind": "scratch"}}}}
    twins = plan.control_twins(config)
    # settings' key order does not matter, nor flow (the control has no flow head); fine-tuning's control is the
    # same entry from a random initialisation (it cannot adapt pretrained: control, whose architecture it reads)
    assert twins == {"fast": "fast_control", "own": "own_control", "ft": "ft_random"}
    rows = []
    for seed in (0, 1):
        rows += [_row("t", seed, "fast", "amortized", "full", 100, 9, 0.5),
                 _row("t", seed, "fast_control", "amortized", "control", 100, 8, 0.5),
                 _row("t", seed, "own", "amortized", "full", 100, 5, 0.5),
                 _row("t", seed, "own_control", "amortized", "control", 100, 10, 0.5),
                 _row("t", seed, "lonely", "amortized", "full", 100, 1, 0.5),
                 _row("t", seed, "scratch", "scratch", "", 100, 2, 0.3)]
    verdict = report.verdict_table(pd.DataFrame(rows), {"e": 200}, twins)
    pairs = verdict[(verdict["metric"] == "modes_found") & (verdict["comparison"] == "amortized: OC-GFN - control")]
    assert sorted(zip(pairs["a"], pairs["b"], pairs["a_minus_b"])) == [("fast", "fast_control", 1.0),
                                                                     ("own", "own_control", -5.0)]
    untwinned = report.verdict_table(pd.DataFrame(rows), {"e": 200})  # without twins: best against best
    row = untwinned[(untwinned["metric"] == "modes_found")
                    & (untwinned["comparison"] == "amortized: OC-GFN - control")].iloc[0]
    assert (row["a"], row["b"]) == ("fast", "own_control")
    # a variant pre-trained as the goal-conditioned RL baseline is named as such, not as an OC-GFN
    config["pretrain"] = {"settings": {}, "variants": {"full": {}}}
    config["envs"] = {"e": {"variants": ["full"], "methods": list(config["finetune"]["methods"])},
                      "f": {"variants": ["full"], "methods": ["fast"], "pretrain": {"algorithm": "gcrl"}}}
    models = plan.adapted_models(config)  # an environment's own settings choose the algorithm
    assert models["f"] == {"fast": "GCRL baseline"} and set(models["e"].values()) == {"OC-GFN"}
    config["pretrain"]["variants"]["full"] = {"algorithm": "gcrl"}
    models = plan.adapted_models(config)
    assert models["e"] == {name: "GCRL baseline" for name in ("fast", "own", "lonely", "ft", "ft_random")}
    named = report.verdict_table(pd.DataFrame(rows), {"e": 200}, twins, models)
    assert set(named.loc[named["a"] == "fast", "comparison"]) >= {"amortized: GCRL baseline - control"}
    assert not named["comparison"].str.contains("OC-GFN").any()


def test_an_oc_gfn_method_and_its_control_are_compared_at_one_budget() -> None:
    """Where the OC-GFN run took fewer gradient steps than scratch by the budget (so it enters at its own larger
    one) and its control did not, both are read at the OC-GFN run's budget, never 300 calls against 100."""
    rows = []
    for seed in (0, 1):
        rows += [_row("t", seed, "scratch", "scratch", "", 100, 2, 0.3),
                 {**_row("t", seed, "own", "amortized", "full", 100, 1, 0.5), "step": 10},  # under-trained at 100
                 _row("t", seed, "own", "amortized", "full", 300, 20, 0.6),
                 _row("t", seed, "own_control", "amortized", "control", 100, 3, 0.5),
                 _row("t", seed, "own_control", "amortized", "control", 300, 25 + seed, 0.7),
                 _row("t", seed, "own_control", "amortized", "control", 400, 99, 0.9)]  # past both budgets
    verdict = report.verdict_table(pd.DataFrame(rows), {"e": 200}, {"own": "own_control"})
    row = verdict[(verdict["metric"] == "modes_found")
                  & (verdict["comparison"] == "amortized: OC-GFN - control")].iloc[0]
    assert row["a_minus_b"] == -5.5 and row["a_calls"] == row["b_calls"] == 300.0 and row["pairs"] == 2
    # the other way round (the control under-trained at the budget) and twins that share no seed
    swapped = [{**r, "method": {"own": "own_control", "own_control": "own"}.get(r["method"], r["method"]),
                "pretrained": {"full": "control", "control": "full"}.get(r["pretrained"], "")} for r in rows]
    verdict = report.verdict_table(pd.DataFrame(swapped), {"e": 200}, {"own": "own_control"})
    row = verdict[(verdict["metric"] == "modes_found")
                  & (verdict["comparison"] == "amortized: OC-GFN - control")].iloc[0]
    assert row["a_minus_b"] == 5.5 and row["a_calls"] == row["b_calls"] == 300.0
    apart = [r for r in rows if not (r["method"] == "own_control" and r["seed"] == 0)
             and not (r["method"] == "own" and r["seed"] == 1)]
    verdict = report.verdict_table(pd.DataFrame(apart), {"e": 200}, {"own": "own_control"})
    row = verdict[(verdict["metric"] == "modes_found")
                  & (verdict["comparison"] == "amortized: OC-GFN - control")].iloc[0]
    assert row["pairs"] == 0 and np.isnan(row["a_minus_b"])


def test_verdict_compares_at_equal_distinct_calls_with_intervals() -> None:
    """OC-GFN minus control and best minus scratch / MCMC, per (task, seed), at the distinct-call budget:
    rows past the budget are not read, and the exact conversion enters at its own final budget."""
    rows = []
    for task in ("t1", "t2"):
        for seed in (0, 1):
            base = {"t1": 0.0, "t2": 10.0}[task] + seed
            rows += [_row(task, seed, "amortized", "amortized", "full", 100, base + 4, 0.5),
                     _row(task, seed, "amortized", "amortized", "full", 300, base + 99, 0.9),  # past the budget
                     _row(task, seed, "amortized_control", "amortized", "control", 100, base + 1, 0.4),
                     _row(task, seed, "scratch", "scratch", "", 100, base + 2, 0.3),
                     _row(task, seed, "mcmc", "mcmc", "", 100, base, 0.2),
                     _row(task, seed, "exact", "exact", "full", 500, base + 3, 0.6),
                     _row(task, seed, "exact_control", "exact", "control", 500, base + 3, 0.6)]
    verdict = report.verdict_table(pd.DataFrame(rows), {"e": 200}).set_index(["metric", "comparison"])
    amortized = verdict.loc[("modes_found", "amortized: OC-GFN - control")]
    assert (amortized["a"], amortized["b"]) == ("amortized", "amortized_control")
    assert amortized["a_minus_b"] == 3.0 and amortized["ci95_low"] == 3.0 == amortized["ci95_high"]
    assert amortized["pairs"] == 4 and amortized["distinct_calls"] == 200
    # the exact conversion queries every object whatever its model: its search is its control's by construction
    # (a difference of 0 that says nothing), so its final samplers are compared instead (sampler_verdict)
    assert ("modes_found", "exact: OC-GFN - control") not in verdict.index
    best = verdict.loc[("modes_found", "best - best scratch")]
    assert (best["a"], best["b"], best["a_minus_b"]) == ("amortized", "scratch", 2.0)
    assert verdict.loc[("modes_found", "best - MCMC")]["a_minus_b"] == 4.0
    top = verdict.loc[("top100_reward", "best - best scratch")]  # chosen within the budget
    assert top["a"] == "amortized" and abs(top["a_minus_b"] - 0.2) < 1e-9
    own = verdict.loc[("top100_reward", "best at its own budget - best scratch")]  # the exact conversion, apart
    assert own["a"] == "exact" and abs(own["a_minus_b"] - 0.3) < 1e-9 and own["a_calls"] == 500


def test_tasks_on_different_scales_are_told_apart() -> None:
    """Top-100 rewards of about 0.8 and 57 on one domain: pooled, the mean is the large task's and its interval
    spans both, so such tasks are listed apart whatever the domain's per_task_report; rewards of one scale pool."""
    rows = [_row(task, seed, "scratch", "scratch", "", 100, 1, top) for seed in (0, 1)
            for task, top in (("small", 0.8), ("large", 57.0))]
    assert report.scales_differ(pd.DataFrame(rows))
    assert not report.scales_differ(pd.DataFrame(rows).assign(top100_reward=0.8))
    assert not report.scales_differ(pd.DataFrame(rows[:1]))


def test_twins_are_read_at_the_same_distinct_calls() -> None:
    """An OC-GFN method that reached 2,214 calls against its control at 2,396, both past the budget at their own: both
    are read at 2,214, the control interpolated between its evaluations at 2,000 and 2,396 calls, not one run at
    2,214 against the other at 2,396 (nor the control at its evaluation 214 calls earlier)."""
    rows = []
    for seed in (0, 1):
        for step, (calls, modes) in enumerate(((0, 0), (1000, 40), (2214, 100))):
            rows.append({**_row("t", seed, "own", "amortized", "full", calls, modes, 0.5), "step": step})
        for step, (calls, modes) in enumerate(((0, 0), (2000, 80), (2396, 180))):
            rows.append({**_row("t", seed, "own_control", "amortized", "control", calls, modes, 0.5), "step": step})
        rows += [{**_row("t", seed, "scratch", "scratch", "", calls, 1, 0.5), "step": 10 * step}
                 for step, calls in enumerate((0, 500, 1000))]
    curves = pd.DataFrame(rows)
    at = report.at_distinct_budget(curves, 1000)
    assert at.set_index("method").loc["own", "own_budget"].all()  # fewer steps than scratch by 1,000 calls
    pairs = report.paired_at(curves, at, "own", "own_control", 1000).set_index("method")
    assert (pairs["unique_reward_calls"] == 2214).all()
    assert pairs.loc["own", "modes_found"].tolist() == [100, 100]
    assert pairs.loc["own_control", "modes_found"].tolist() == pytest.approx([80 + 100 * 214 / 396] * 2)
    verdict = report.verdict_table(curves, {"e": 1000}, {"own": "own_control"})
    row = verdict[(verdict["metric"] == "modes_found") & (verdict["comparison"] == "amortized: OC-GFN - control")]
    assert row.iloc[0]["a_calls"] == row.iloc[0]["b_calls"] == 2214
    assert row.iloc[0]["a_minus_b"] == pytest.approx(20 - 100 * 214 / 396)
    # within the budget both are read at it, the one without an evaluation there interpolated; a run whose first
    # evaluation is past the other's reach sets where both are read
    for calls_a, calls_b, budget, at_calls, modes_b in (((0, 500, 1000, 1500), (0, 400, 800, 1200), 1000, 1000, 25),
                                                        ((1200, 2400), (0, 500, 1000, 1500), 1000, 1200, 28)):
        rows = [{**_row("t", 0, "own", "amortized", "full", c, c / 40, 0.5), "step": i} for i, c in enumerate(calls_a)]
        rows += [{**_row("t", 0, "own_control", "amortized", "control", c, c / 40, 0.5), "step": i}
                 for i, c in enumerate(calls_b)]
        curves = pd.DataFrame(rows)
        pairs = report.paired_at(curves, report.at_distinct_budget(curves, budget), "own", "own_control", budget)
        assert (pairs["unique_reward_calls"] == at_calls).all()
        assert pairs.set_index("method").loc["own_control", "modes_found"] == pytest.approx(at_calls / 40)


def test_novel_modes_enter_the_tables_and_the_verdict_where_a_domain_has_data(tmp_path: Path) -> None:
    """A domain whose curves count novel modes (a data set) gets them as a table column, a verdict metric and a
    verdict sentence; a domain without them gets none of the three."""
    rows = []
    for seed in (0, 1):
        for method, kind, novel in (("scratch", "scratch", 1), ("scratch_data", "scratch", 0), ("mcmc", "mcmc", 2)):
            row = {**_row("t", seed, method, kind, "", 100, 3, 0.5), "top100_diversity": 1.0}
            rows += [{**row, "env": "d", "novel_modes_found": novel}, row]  # env "e": no data set, no column
    curves = pd.DataFrame(rows)
    table, _ = report.sequence_table(curves, "d", 200)  # total calls: twice the distinct ones
    assert table.set_index("method").loc["mcmc", "novel_modes_found"] == "2"
    assert "novel_modes_found" not in report.sequence_table(curves, "e", 200)[0]
    verdict = report.verdict_table(curves, {"d": 100, "e": 100})
    novel = verdict[verdict["metric"] == "novel_modes_found"]
    assert set(novel["env"]) == {"d"}
    assert novel.set_index("comparison").loc["best - best scratch", "a_minus_b"] == 1.0  # mcmc 2 - scratch 1
    lines = page.verdict_lines(verdict, pd.DataFrame(), "d", "search")
    assert any(line.startswith("novel modes (not in the data), best - best scratch") for line in lines)
    assert not any("novel" in line for line in page.verdict_lines(verdict, pd.DataFrame(), "e", "search"))


def test_an_undertrained_amortized_run_enters_at_its_own_budget() -> None:
    """The paper's predictor spends K calls per transition: where it has taken fewer gradient steps than
    scratch by the budget it is reported at its final (larger) budget, never under-trained."""
    rows = []
    for step in (0, 10, 20, 40):  # amortized: 10 distinct calls per step; scratch: 1
        rows.append({**_row("t", 0, "amortized", "amortized", "full", 10 * step, step, 0.1), "step": step})
    for step in (0, 100, 200):
        rows.append({**_row("t", 0, "scratch", "scratch", "", step, step / 100, 0.1), "step": step})
    at = report.at_distinct_budget(pd.DataFrame(rows), 200).set_index("method")
    assert at.loc["scratch", "step"] == 200 and not at.loc["scratch", "own_budget"]
    assert at.loc["amortized", "step"] == 40 and at.loc["amortized", "unique_reward_calls"] == 400
    assert at.loc["amortized", "own_budget"]
    for step in (0, 100, 200):  # the own-terminal variant: one call per trajectory, scratch's steps
        rows.append({**_row("t", 0, "amortized_own", "amortized", "full", step, step, 0.1), "step": step})
    at = report.at_distinct_budget(pd.DataFrame(rows), 200).set_index("method")
    assert at.loc["amortized_own", "step"] == 200 and not at.loc["amortized_own", "own_budget"]
    verdict = report.verdict_table(pd.DataFrame(rows), {"e": 200})
    best = verdict[(verdict["metric"] == "modes_found") & (verdict["comparison"] == "best - best scratch")].iloc[0]
    assert (best["a"], best["a_calls"], best["b_calls"]) == ("amortized_own", 200.0, 200.0)
    assert best["a_minus_b"] == 198.0


def test_interval_is_students_t_over_the_replicates() -> None:
    """Two seeds get t(1) = 12.71 standard errors, not their range (which a bootstrap of two values returns, and
    which holds the mean half the time); one value gets no interval."""
    assert report.interval(pd.Series([4.0]))[0] == 4.0 and np.isnan(report.interval(pd.Series([4.0]))[1:]).all()
    for dof, table in ((1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423), (120, 1.9799)):
        assert report.t_quantile(dof) == pytest.approx(table, abs=1e-4)
    mean, low, high = report.interval(pd.Series([35.0, 39.0, np.nan]))
    assert mean == 37.0 and (low, high) == pytest.approx((37 - 12.7062 * 2, 37 + 12.7062 * 2), abs=1e-3)
    mean, low, high = report.interval(pd.Series([1.0, 2.0, 3.0, 10.0]))
    half = 3.1824 * np.std([1.0, 2.0, 3.0, 10.0], ddof=1) / 2
    assert mean == 4.0 and (low, high) == pytest.approx((4 - half, 4 + half), abs=1e-3)


def test_budget_table_compares_at_equal_steps_calls_and_seconds() -> None:
    rows = [{"env": "g", "task": "t", "seed": 0, "method": "scratch", "kind": "scratch", "step": s,
             "reward_calls": 10 * s, "unique_reward_calls": 5 * s, "seconds": 2.0 * s, "l1": 1.0 / (1 + s)}
            for s in (0, 1, 2, 4, 8)]
    rows += [{"env": "g", "task": "t", "seed": 0, "method": "exact", "kind": "exact", "step": 0,
              "reward_calls": 40, "unique_reward_calls": 40, "seconds": 3.0, "l1": 0.001}]
    table = report.budget_table(pd.DataFrame(rows)).set_index("method")
    exact = table.loc["exact"]
    assert exact["scratch_l1_same_steps"] == 1.0  # scratch at step 0
    assert exact["scratch_l1_same_calls"] == 1.0 / 5  # within 40 calls: step 4
    assert exact["scratch_l1_same_unique_calls"] == 1.0 / 9  # within 40 distinct calls: step 8
    assert exact["scratch_l1_same_seconds"] == 1.0 / 2  # within 3 s: step 1


def test_numbers_carry_an_interval_only_with_replicates() -> None:
    df = pd.DataFrame({"env": "e", "method": ["a", "a", "a", "b"], "x": [0.1234567, 0.2, 0.3, 12345.678]})
    table = report._mean_interval(df, ["env", "method"], ["x"]).set_index("method")
    assert table.loc["b", "x"] == "12,346" and table.loc["b", "n"] == 1  # n = 1: the value alone
    mean, low, high = table.loc["a", "x"].replace("[", "").replace("]", "").replace(",", "").split()
    assert mean == "0.208" and float(low) < 0.208 < float(high)  # 3 significant digits, 95% interval
    assert report.number(1.963e-05) == "1.96e-05" and report.number(float("nan")) == "-"


def test_intervals_stay_within_what_a_metric_can_take() -> None:
    """Two seeds' t interval of a count or a rate reaches past 0 or 1: it is cut there (the mean lies inside, so the
    cut interval holds it at least as often); a column of no known range keeps its whole interval."""
    df = pd.DataFrame({"env": "e", "method": "a", "modes_found": [4.0, 60.0], "success_sample": [0.9, 1.0],
                       "other": [4.0, 60.0]})
    row = report._mean_interval(df, ["env", "method"], ["modes_found", "success_sample", "other"]).iloc[0]
    assert row["modes_found"] == "32 [0, 388]" and row["success_sample"] == "0.95 [0.315, 1]"
    assert row["other"] == "32 [-324, 388]"
    assert report.metric_range("l1") == (0.0, float("inf")) and report.metric_range("a_minus_b")[0] == float("-inf")


def test_best_cells_are_marked_per_domain_and_direction() -> None:
    table = pd.DataFrame({"env": ["g", "g", "h", "h"], "method": ["a", "b", "a", "b"],
                          "l1": ["0.1 [0.05, 0.2]", "0.3", "2", "1"], "modes_found": ["3", "5", "1", "1"]})
    best = page._best_cells(table)
    assert (0, "l1") in best and (3, "l1") in best and (1, "modes_found") in best
    assert not any(col == "modes_found" and row in (2, 3) for row, col in best)  # a tie marks nothing
    html = page._html_table(table)
    assert html.count("best") == 3 and "exact L1" in html  # units and names in headers


def test_descriptor_runs_in_the_summary(tmp_path: Path) -> None:
    """The descriptor-window table and the outcome coverage reach the page; outcome_conversion (one call per
    outcome, no training) pairs with its control and enters at its own budget, like the exact conversion."""
    rows = []
    for seed in (0, 1):
        rows += [_row("t", seed, "conv", "outcome_conversion", "desc", 190, 3 + seed, 0.7),
                 _row("t", seed, "conv_control", "outcome_conversion", "control", 150, 1, 0.5),
                 _row("t", seed, "scratch", "scratch", "", 100, 2, 0.3)]
    curves = pd.DataFrame(rows).assign(top100_diversity=1.0)
    verdict = report.verdict_table(curves, {"e": 120}).set_index(["metric", "comparison"])
    conv = verdict.loc[("modes_found", "outcome_conversion: OC-GFN - control")]
    assert (conv["a"], conv["b"], conv["a_minus_b"]) == ("conv", "conv_control", 2.5)
    windows = pd.DataFrame({"env": "e", "variant": "desc", "seed": [0, 1], "window": "polar", "window_outcomes": 4,
                            "validity": 1.0, "uniqueness": [0.9, 0.7], "in_window": [0.5, 0.7], "on_outcome": 0.2,
                            "random_in_window": 0.1, "lift": [5.0, 7.0]})
    pretrain = pd.DataFrame({"env": "e", "variant": "desc", "seed": [0, 1], "step": 10, "success_sample": 0.3,
                             "success_greedy": 0.4, "outcome_coverage": [0.25, 0.35]})
    html, md = tmp_path / "s.html", tmp_path / "s.md"
    page.summary_page(pretrain, pd.DataFrame(), curves, pd.DataFrame({"torch": ["2"]}), [], str(html), str(md),
                      budgets={"e": 120}, windows=windows)
    text = md.read_text()
    assert "Descriptor-window sampler" in text and "polar" in text and "outcome_coverage" in text
    table = report.window_table(windows).set_index("window")
    assert table.loc["polar", "in_window"].startswith("0.6") and table.loc["polar", "lift"].startswith("6")
    assert "lift" not in report.window_table(windows.drop(columns=["random_in_window", "lift"]))


def test_a_collapsed_method_does_not_set_the_default_budget() -> None:
    """Without a configured budget the tables compare at what every scratch GFlowNet reached; a DQN that collapsed
    onto 40 distinct objects enters at its own 40 instead of pulling scratch and MCMC down to 40 calls."""
    rows = []
    for method, kind, calls in (("scratch", "scratch", (100, 400)), ("mcmc", "mcmc", (100, 500)),
                                ("dqn", "dqn", (20, 40))):
        for c in calls:
            rows.append({"env": "e", "task": "t", "method": method, "kind": kind, "seed": 0, "step": c,
                         "reward_calls": 4 * c, "unique_reward_calls": c, "modes_found": c // 10,
                         "top100_reward": 0.5, "top100_diversity": 1.0})
    curves = pd.DataFrame(rows)
    assert report.default_budget(curves, "unique_reward_calls") == 400
    table, used = report.sequence_table(curves, "e", None)
    assert used == 400
    found = table.set_index("method")["modes_found"]
    assert found["scratch"] == "40" and found["mcmc"] == "10" and found["dqn"] == "4"
    assert report.default_budget(curves[curves["kind"] != "scratch"], "unique_reward_calls") == 40  # no scratch
    # distinct calls are random for a GFlowNet: the budget is what every scratch run reached, not the luckiest one
    short = {**rows[1], "seed": 1, "unique_reward_calls": 350}
    assert report.default_budget(pd.concat([curves, pd.DataFrame([short])]), "unique_reward_calls") == 350


def test_the_best_method_is_compared_on_its_runs_within_the_budget() -> None:
    """"best - best scratch" reads the best method where it is within the budget: a seed that entered at its own
    larger budget (fewer gradient steps than scratch by then) stays out of that difference."""
    rows = []
    for seed in (0, 1, 2):
        rows += [{**_row("t", seed, "scratch", "scratch", "", calls, calls // 100, 0.1), "step": step}
                 for step, calls in ((0, 0), (50, 500), (100, 1000))]
        spent = ((0, 0), (10, 1000), (100, 8000)) if seed == 0 else ((0, 0), (100, 1000))
        rows += [{**_row("t", seed, "amortized", "amortized", "full", calls, calls // 50, 0.1), "step": step}
                 for step, calls in spent]
    verdict = report.verdict_table(pd.DataFrame(rows), {"e": 1000}).set_index(["metric", "comparison"])
    best = verdict.loc[("modes_found", "best - best scratch")]
    assert (best["a"], best["pairs"], best["a_minus_b"], best["a_calls"]) == ("amortized", 2, 10.0, 1000.0)


def test_the_best_method_is_not_chosen_on_a_subset_of_the_tasks() -> None:
    """Tasks differ in scale (here 20 modes on one, 2 on the other): a method within the budget on the easy task only
    must not be "best" by a mean over that task alone, while the others' means include the hard one."""
    rows = []
    for seed in (0, 1):
        for task, scale in (("easy", 10.0), ("hard", 1.0)):
            rows += [{**_row(task, seed, "scratch", "scratch", "", calls, 1.0 * scale, 0.1), "step": step}
                     for step, calls in ((0, 0), (100, 1000))]
            rows += [{**_row(task, seed, "mcmc", "mcmc", "", calls, 2.0 * scale, 0.1), "step": step}
                     for step, calls in ((0, 0), (100, 1000))]
        # within the budget on "easy"; on "hard" its first evaluation is already past it
        rows += [{**_row("easy", seed, "own", "amortized", "full", calls, 1.5 * 10.0, 0.1), "step": step}
                 for step, calls in ((0, 0), (100, 1000))]
        rows.append({**_row("hard", seed, "own", "amortized", "full", 5000, 1.5, 0.1), "step": 100})
    verdict = report.verdict_table(pd.DataFrame(rows), {"e": 1000}).set_index(["metric", "comparison"])
    best = verdict.loc[("modes_found", "best - best scratch")]
    assert best["a"] == "mcmc" and best["a_minus_b"] == 5.5  # 20 - 10 on easy and 2 - 1 on hard, two seeds each
    assert ("modes_found", "best - MCMC") not in verdict.index  # the best is MCMC itself


def test_final_samplers_pair_each_oc_gfn_method_with_its_control(tmp_path: Path) -> None:
    """The exact conversion's search equals its control's, so the verdict compares their final samplers (exact L1,
    modes among the samples), per task and seed, on the page too; grids, led by the L1, get the same pairs."""
    evaluation = pd.DataFrame([{"env": "e", "task": t, "seed": seed, "method": m, "l1": l1 + seed / 10,
                                "modes_in_samples": modes}
                               for t in ("t1", "t2") for seed in (0, 1)
                               for m, l1, modes in (("exact", 0.5, 3), ("exact_control", 0.1, 5), ("scratch", 1.0, 2))])
    kinds = {"exact": "exact", "exact_control": "exact", "scratch": "scratch"}
    table = report.sampler_verdict(evaluation, kinds, {"exact": "exact_control"}).set_index("metric")
    assert table.loc["l1", "a_minus_b"] == 0.4 and table.loc["l1", "pairs"] == 4
    assert table.loc["modes_in_samples", "a_minus_b"] == -2 and table.loc["l1", "kind"] == "exact"
    assert report.sampler_verdict(evaluation, kinds, None).empty
    rows = [_row(t, seed, m, kinds[m], {"exact": "full", "exact_control": "control"}.get(m, ""), 36, 3, 0.5)
            for t in ("t1", "t2") for seed in (0, 1) for m in kinds]
    curves = pd.DataFrame(rows).assign(top100_diversity=1.0)
    for headline in ("search", "l1"):
        html, md = tmp_path / f"{headline}.html", tmp_path / f"{headline}.md"
        page.summary_page(pd.DataFrame({"env": "e", "variant": "full", "seed": [0], "step": 10, "success_sample": 1.0,
                                        "success_greedy": 1.0}), evaluation, curves,
                          pd.DataFrame({"torch": ["2"]}), [], str(html), str(md), budgets={"e": 36},
                          headlines={"e": headline}, twins={"exact": "exact_control"})
        text = md.read_text()
        assert "exact L1 of the final sampler (lower is better" in text
        assert "exact: OC-GFN - control: exact - exact_control = +0.4" in text
        assert ("modes among the final samples (higher is better" in text) == (headline == "search")
        assert "Final samplers, each method that adapts a pre-trained model (OC-GFN or GCRL baseline) - its " in text


def test_rows_past_the_budget_are_marked_and_compared_apart() -> None:
    """In the table of objects queried within a budget, a run that entered at its own larger budget (the exact
    conversion: one call per object) says so, has no win rate at the budget, and is not bolded against the rest."""
    rows = []
    for seed in (0, 1):
        rows += [_row("t", seed, "scratch", "scratch", "", 100, 2, 0.3),
                 _row("t", seed, "mcmc", "mcmc", "", 100, 3, 0.2),
                 _row("t", seed, "exact", "exact", "full", 500, 9, 0.9)]
    table, used = report.sequence_table(pd.DataFrame(rows).assign(top100_diversity=1.0), "e", 200)
    table = table.set_index("method")
    assert used == 200 and table.loc["exact", "own_budget"] and not table.loc["mcmc", "own_budget"]
    assert np.isnan(table.loc["exact", "win_rate_vs_scratch"]) and table.loc["mcmc", "win_rate_vs_scratch"] == 1.0
    best = page._best_cells(table.reset_index())
    methods = table.index.tolist()
    assert (methods.index("mcmc"), "modes_found") in best  # the best within the budget, not exact's 9 at 500
    assert not any(row == methods.index("exact") for row, _ in best)


def test_an_under_trained_pre_training_is_flagged_beside_its_adaptations() -> None:
    """A variant some adaptation starts from, ending below half success, is named; an unused one (an ablation) and
    a well-trained one are not."""
    pretrain = pd.DataFrame([{"env": "e", "variant": v, "seed": seed, "step": step, "success_sample": s * step / 10,
                              "success_greedy": 1.0}
                             for v, s in (("full", 0.3), ("no_ot", 0.1), ("long", 0.9)) for seed in (0, 1)
                             for step in (5, 10)])
    curves = pd.DataFrame([_row("t", 0, m, "amortized", v, 10, 1, 0.5)
                           for m, v in (("own", "full"), ("own_long", "long"), ("own_control", "control"))])
    assert report.under_trained(pretrain, curves) == {"e": [("full", 0.3)]}
    assert report.under_trained(pretrain, curves.drop(columns="pretrained")) == {}


def test_a_compute_matched_scratch_does_not_set_the_steps_a_predictor_must_have_taken() -> None:
    """An amortized run enters at the budget when it took as many gradient steps by then as the plain scratch
    GFlowNet; scratch_matched, which trains for longer by design, does not push it to its own budget."""
    rows = [{**_row("t", 0, m, kind, p, calls, 1, 0.5), "step": step}
            for m, kind, p, steps in (("scratch", "scratch", "", (0, 20)), ("scratch_matched", "scratch", "", (0, 80)),
                                      ("amortized", "amortized", "full", (0, 30)))
            for step, calls in zip(steps, (0, 100))]
    at = report.at_distinct_budget(pd.DataFrame(rows), 150).set_index("method")
    assert not at["own_budget"].any() and at.loc["amortized", "step"] == 30


def test_a_run_past_the_budget_and_one_that_queried_every_object_enter_where_they_should() -> None:
    """A budget beyond a small space: scratch has queried all 125 cells by step 8 and trains on, so it is compared
    at its last evaluation (step 60), not its first with 125 calls. A budget below MCMC's first evaluation (its
    chains start with a call each): MCMC enters at that first evaluation, marked, not with its whole run; and
    scratch, which has called nothing within it, at its first evaluation with a call, not as its untrained start."""
    rows = []
    for step, calls in ((0, 0), (8, 125), (30, 125), (60, 125)):
        rows.append({**_row("t", 0, "scratch", "scratch", "", calls, step, 0.1), "step": step})
    for step, calls in ((0, 14), (30, 60), (60, 103)):
        rows.append({**_row("t", 0, "mcmc", "mcmc", "", calls, step, 0.1), "step": step})
    at = report.at_distinct_budget(pd.DataFrame(rows), 600).set_index("method")
    assert at.loc["scratch", "step"] == 60 and not at.loc["scratch", "own_budget"]
    at = report.at_distinct_budget(pd.DataFrame(rows), 10).set_index("method")
    assert at.loc["mcmc", "step"] == 0 and at.loc["mcmc", "unique_reward_calls"] == 14 and at.loc["mcmc", "own_budget"]
    assert at.loc["scratch", "step"] == 8 and at.loc["scratch", "own_budget"]
    pairs = report.paired_at(pd.DataFrame(rows), at.reset_index(), "scratch", "mcmc", 10)
    # both read at the same calls: MCMC's last (103), scratch's search metrics interpolated towards its 125
    assert sorted(zip(pairs["method"], pairs["unique_reward_calls"])) == [("mcmc", 103), ("scratch", 103)]
