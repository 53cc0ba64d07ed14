"""Result tables of the summary page (``report.page`` renders them), built only from the collected parquet tables."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

NOT_TRAINED = ("exact", "outcome_conversion")  # kinds that query once per outcome and never train: own budget
SAME_SEARCH = ("exact",)  # kinds that query every object whatever their model: the search of their control


def number(v: float) -> str:
    """A value with 3 significant digits (thousands with separators, no exponent below 1e6)."""
    if pd.isna(v):
        return "-"
    if abs(v) >= 1000 and abs(v) < 1e6:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _mean_interval(df: pd.DataFrame, keys: list[str], cols: list[str]) -> pd.DataFrame:
    """Per group: n (the replicates: seeds, or tasks x seeds) and each column's mean with its 95% t interval
    (``interval``) cut to the values the column can take (``metric_range``), as text; with n = 1 the value alone
    (one run has no spread to show)."""
    g = df.groupby(keys, sort=False)
    out = g.size().rename("n").to_frame()
    for c in cols:
        cells = []
        floor, ceiling = metric_range(c)
        for _, values in g[c]:
            mean, low, high = interval(values)
            low, high = max(low, floor), min(high, ceiling)  # NaN bounds (one value) stay NaN
            n = int(values.notna().sum())
            cells.append("-" if n == 0 else number(mean) if n == 1 or low == high == mean
                         else f"{number(mean)} [{number(low)}, {number(high)}]")
        out[c] = cells
    return out.reset_index()


def _with_data(df: pd.DataFrame, cols) -> list[str]:
    """The columns of ``cols`` that ``df`` has with at least one value (optional metrics: only some domains
    or runs have them)."""
    return [c for c in cols if c in df and df[c].notna().any()]


def pretrain_table(pretrain: pd.DataFrame) -> pd.DataFrame:
    """Final success rates per environment and pre-training variant (and the outcome coverage where outcomes
    are descriptors); empty where no domain pre-trains (every ``variants: []``)."""
    if not len(pretrain):
        return pd.DataFrame()
    final = pretrain.loc[pretrain.groupby(["env", "variant", "seed"])["step"].idxmax()]
    extra = _with_data(final, ("outcome_coverage",))
    return _mean_interval(final, ["env", "variant"], ["step", "success_sample", "success_greedy", *extra])


UNDER_TRAINED = 0.5  # a pre-trained model whose samplers reach fewer than half their outcomes is flagged


def under_trained(pretrain: pd.DataFrame, curves: pd.DataFrame) -> dict[str, list[tuple[str, float]]]:
    """Per domain, the pre-training variants that some adaptation starts from whose final sampled success (mean
    over seeds) is below ``UNDER_TRAINED``: what the report must say beside any "OC-GFN minus control" of theirs."""
    if not len(pretrain) or not len(curves) or "pretrained" not in curves:
        return {}
    final = pretrain.loc[pretrain.groupby(["env", "variant", "seed"])["step"].idxmax()]
    success = final.groupby(["env", "variant"])["success_sample"].mean()
    out: dict[str, list[tuple[str, float]]] = {}
    used = curves.groupby("env")["pretrained"].agg(set)
    for (env, variant), value in success.items():
        if variant in used.get(env, set()) and value < UNDER_TRAINED:
            out.setdefault(env, []).append((variant, float(value)))
    return out


def window_table(windows: pd.DataFrame | None) -> pd.DataFrame:
    """The descriptor-window sampler per environment, variant and window, over seeds, beside the fraction of
    uniform objects inside the window (its no-pre-training control; absent from tables written before it)."""
    if windows is None or not len(windows):
        return pd.DataFrame()
    control = _with_data(windows, ("random_in_window", "lift"))
    return _mean_interval(windows, ["env", "variant", "window"], ["window_outcomes", "validity", "uniqueness",
                                                                  "in_window", "on_outcome", *control])


EVALUATION_METRICS = ["l1", "kl", "l1_empirical", "outcome_l1", "outcome_l1_exact", "modes_in_samples", "modes_total",
                      "top100_reward", "top100_diversity", "unique_fraction", "validity", "top100_scaffolds"]


def evaluation_table(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Every final sampler: exact L1 / KL of its policy and empirical L1 of its samples where the space is
    enumerable, and the sample metrics of every domain, aggregated over seeds (columns that no row of
    the table has, e.g. molecule validity on a grid-only run, are left out)."""
    if not len(evaluation):
        return pd.DataFrame()
    if "modes_total" in evaluation:  # -1: modes known only once found (threshold, Tanimoto), shown as missing
        evaluation = evaluation.assign(modes_total=evaluation["modes_total"].where(evaluation["modes_total"] >= 0))
    metrics = _with_data(evaluation, EVALUATION_METRICS)
    return _mean_interval(evaluation, ["env", "task", "method"], metrics)


SEQUENCE_METRICS = ["modes_found", "top100_reward", "top100_diversity"]
NOVEL = "novel_modes_found"  # on domains with a data set: the modes outside its training split (tasks/oracle.py)


def at_budget(curves: pd.DataFrame, budget: float) -> pd.DataFrame:
    """Each (task, method, seed) curve's last evaluation with at most ``budget`` reward calls (none
    where a method's first evaluation already spent more, e.g. the exact conversion's |Y| calls)."""
    within = curves[curves["reward_calls"] <= budget]
    return within.loc[within.groupby(["task", "method", "seed"])["reward_calls"].idxmax()]


SCALE_RATIO = 10.0  # tasks whose best rewards differ more than this are listed apart, whatever the domain says


def scales_differ(curves: pd.DataFrame) -> bool:
    """Whether the tasks of one domain's ``curves`` reward on different scales: the best top-100 reward any method
    reached differs more than SCALE_RATIO-fold between two of them. Pooled over such tasks, a mean is the large
    task's value and its interval spans both (rewards of about 0.8 and 57 read 29.1 [0, 81.1]), whatever
    ``env.per_task_report`` says of the domain's usual tasks."""
    if "top100_reward" not in curves or curves["task"].nunique() < 2:
        return False
    best = curves.groupby("task")["top100_reward"].max()
    best = best[best > 0]
    return bool(len(best) > 1 and best.max() > SCALE_RATIO * best.min())


def sequence_table(curves: pd.DataFrame, env: str, budget: float | None,
                   by_task: bool = False) -> tuple[pd.DataFrame, float]:
    """One domain's methods at a fixed budget of distinct reward calls (what a user pays; total calls for
    curves written before they were counted): modes found, top-100 reward and diversity of the objects
    queried so far, mean and 95% interval over tasks and seeds (over seeds per task when ``by_task``), and
    the win rate against scratch (share of (task, seed) pairs with more modes found; ties count one half; none for
    the scratch baseline itself).
    As in the verdict (``at_distinct_budget``), a run that does not train, or that took fewer gradient steps
    than scratch by then, enters at its own larger budget: ``unique_reward_calls`` says what each used, and
    ``own_budget`` marks those rows (no win rate at the budget, best cells apart)."""
    df = curves[curves["env"] == env]
    distinct = "unique_reward_calls" in df and df["unique_reward_calls"].notna().all()
    calls = "unique_reward_calls" if distinct else "reward_calls"
    if budget is None:
        budget = default_budget(df, calls)
    at = at_distinct_budget(df, budget) if distinct else at_budget(df, budget)
    keys = ["task", "method"] if by_task else ["method"]
    out = _mean_interval(at, keys, SEQUENCE_METRICS + _with_data(at, (NOVEL,)))
    if distinct:
        used = at.groupby(keys, sort=False)[calls].mean().round().astype(int)
        out.insert(len(keys), "unique_reward_calls", used.to_numpy())  # the same groups in the same order
    if not by_task:
        out.insert(1, "tasks", at.groupby("method", sort=False)["task"].nunique().to_numpy())
    if distinct:  # rows past the budget: compared (best cells) only with each other, and no win rate at the budget
        out.insert(len(keys) + 1, "own_budget", at.groupby(keys, sort=False)["own_budget"].any().to_numpy())
    scratch = at[at["kind"] == "scratch"]
    if len(scratch):  # the baseline is the method called scratch, else the first scratch-kind one
        name = "scratch" if (scratch["method"] == "scratch").any() else scratch["method"].iloc[0]
        base = scratch[scratch["method"] == name].set_index(["task", "seed"])
        wins = []
        for _, key in out.iterrows():
            m = at[(at["method"] == key["method"]) & ((at["task"] == key["task"]) if by_task else True)]
            m = m.set_index(["task", "seed"])
            joined = m[["modes_found"]].join(base[["modes_found"]].add_suffix("_scratch"), how="inner")
            score = (joined["modes_found"] > joined["modes_found_scratch"]) + 0.5 * (
                joined["modes_found"] == joined["modes_found_scratch"])
            own = bool(key.get("own_budget", False))  # and the baseline against itself: no win rate
            wins.append(float(score.mean()) if len(score) and not own and key["method"] != name else float("nan"))
        out["win_rate_vs_scratch"] = wins
    out.insert(0, "distinct_calls" if distinct else "reward_calls", int(budget))
    return out, budget


def budget_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Every adapted method at its final budget against the scratch GFlowNet at the same number of
    training steps, of reward calls, of distinct reward calls and of wall-clock seconds (set-up included:
    the exact conversion's seconds are the conversion), its last evaluation within each budget;
    'scratch_*' is NaN where scratch never evaluated that early."""
    rows = []
    if "l1" not in curves or "seconds" not in curves:
        return pd.DataFrame()
    along = curves[curves["l1"].notna() & (curves["step"] > 0)].groupby(["env", "method"])["step"].nunique()
    envs = along[along > 1].index.get_level_values("env").unique()  # exact L1 along the curves, not only at the end
    has_l1 = curves[curves["l1"].notna()].groupby(["env", "method"]).size().index
    rows_with_l1 = curves.set_index(["env", "method"]).index.isin(has_l1)
    for (env, task, seed), df in curves[curves["env"].isin(envs) & rows_with_l1].groupby(["env", "task", "seed"]):
        scratch = df[(df["kind"] == "scratch") & df["l1"].notna()].sort_values("step")
        for method, m in df[df["kind"] != "scratch"].groupby("method"):
            last = m.loc[m["step"].idxmax()]
            row = {"env": env, "task": task, "seed": seed, "method": method, "steps": last["step"],
                   "reward_calls": last["reward_calls"], "unique_reward_calls": last["unique_reward_calls"],
                   "seconds": last["seconds"], "l1": last["l1"]}
            for label, col in (("steps", "step"), ("calls", "reward_calls"), ("unique_calls", "unique_reward_calls"),
                               ("seconds", "seconds")):
                within = scratch[scratch[col] <= last[col]]
                row[f"scratch_l1_same_{label}"] = within["l1"].iloc[-1] if len(within) else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


# kinds whose runs pair with a no-pre-training control
ADAPTATION_KINDS = ("exact", "amortized", "finetuned", "outcome_conversion", "outcome_search")
VERDICT_METRICS = ("modes_found", "top100_reward")


def interval(values: pd.Series) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval (mean +- t s / sqrt(n)); with one value, no interval (NaN bounds: one run has
    no spread). A bootstrap percentile interval of a few seeds is their range, which holds the mean about as often as
    a coin toss (with two seeds, half the time); t widens with the few replicates a run has."""
    v = values.dropna().to_numpy(dtype=float)
    if not len(v):
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if len(v) == 1:
        return mean, float("nan"), float("nan")
    half = t_quantile(len(v) - 1) * float(v.std(ddof=1)) / np.sqrt(len(v))
    return mean, mean - half, mean + half


FRACTIONS = ("success_sample", "success_greedy", "unique_fraction", "validity", "uniqueness", "in_window",
             "on_outcome", "outcome_coverage", "random_in_window")
COUNTS_AND_SCORES = ("modes_found", "novel_modes_found", "modes_in_samples", "modes_total", "top100_reward",
                     "top100_diversity", "top100_scaffolds", "l1", "kl", "l1_empirical", "outcome_l1",
                     "outcome_l1_exact", "step", "window_outcomes", "lift")  # rewards are positive (tasks/rewards.py)


def metric_range(column: str) -> tuple[float, float]:
    """The values a result column can take: [0, 1] for rates, [0, inf) for counts, distances and the (positive)
    rewards, else unbounded. A t interval of a few seeds reaches past them (modes 32 [-324, 388]); cut to them, it
    still holds the mean at least as often, since the mean lies inside them."""
    if column in FRACTIONS:
        return 0.0, 1.0
    if column in COUNTS_AND_SCORES:
        return 0.0, float("inf")
    return float("-inf"), float("inf")


@functools.lru_cache(maxsize=None)
def t_quantile(dof: int, level: float = 0.95) -> float:
    """The two-sided ``level`` quantile of Student's t with ``dof`` degrees of freedom: t with P(|T| <= t) = level,
    by bisection on its closed-form distribution for whole degrees of freedom (Abramowitz and Stegun 26.7.3-4)."""
    def inside(t: float) -> float:  # P(|T| <= t)
        theta = np.arctan(t / np.sqrt(dof))
        c2, term, total = np.cos(theta) ** 2, 1.0, 1.0
        if dof % 2 == 0:
            for k in range(2, dof - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
            return float(np.sin(theta) * total)
        if dof == 1:
            return float(2 * theta / np.pi)
        for k in range(3, dof - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        return float(2 / np.pi * (theta + np.sin(theta) * np.cos(theta) * total))

    low, high = 0.0, 1.0
    while inside(high) < level:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if inside(mid) < level else (low, mid)
    return (low + high) / 2


STEP_MATCHED = ("amortized",)  # kinds that may spend many reward calls per gradient step (K per transition)


SAMPLER_METRICS = ("l1", "modes_in_samples")  # of the final samplers (tables/evaluation.parquet)


def sampler_verdict(evaluation: pd.DataFrame, kinds: dict[str, str], twins: dict[str, str] | None,
                    models: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """Each OC-GFN method minus its no-pre-training twin (``plan.control_twins``) on its final sampler: the exact L1
    of its policy to R/Z where the space can be listed, and the modes among its samples; per (task, seed)
    differences, mean and 95% interval. What the search metrics cannot say for a method that queries every outcome
    whatever its model (the exact conversion: its search is its control's), and the headline of the domains that
    lead with the L1. ``kinds``: each method's kind; ``models``: per environment, what each adapts
    (``plan.adapted_models``; default an OC-GFN)."""
    rows = []
    if not twins or not len(evaluation):
        return pd.DataFrame(rows)
    for env, e in evaluation.groupby("env", sort=False):
        keyed = e.set_index(["task", "seed"])
        for a, b in twins.items():
            if not ((keyed["method"] == a).any() and (keyed["method"] == b).any()):
                continue
            for metric in SAMPLER_METRICS:
                if metric not in keyed:
                    continue
                diff = (keyed[keyed["method"] == a][metric] - keyed[keyed["method"] == b][metric]).dropna()
                if not len(diff):
                    continue
                mean, low, high = interval(diff)
                kind = kinds.get(a, "")
                rows.append({"env": env, "metric": metric, "kind": kind,
                             "comparison": f"{kind or '?'}: {adapted(models, env, a)} - control", "a": a, "b": b,
                             "a_minus_b": mean, "ci95_low": low, "ci95_high": high, "pairs": len(diff)})
    return pd.DataFrame(rows)


def default_budget(df: pd.DataFrame, calls: str) -> float:
    """Where a config names no budget: the largest number of ``calls`` every scratch GFlowNet run reached, each task
    and seed (every trained method's where none ran): a run that stopped short of the budget would enter below it.
    A method that cannot spend that many (a DQN that collapsed onto a few objects) enters at what it used, the
    tables' per-row calls say so, instead of pulling every other method down to it."""
    trained = df[~df["kind"].isin(NOT_TRAINED)]
    scratch = trained[trained["kind"] == "scratch"]
    pool = scratch if len(scratch) else trained if len(trained) else df
    return float(pool.groupby(["method", "task", "seed"])[calls].max().min()) if len(pool) else 0.0


def at_distinct_budget(curves: pd.DataFrame, budget: float) -> pd.DataFrame:
    """Each (task, method, seed) at its last evaluation within ``budget`` distinct reward calls (the last, not the
    first, of those with the most calls: a run that has queried every object of a small space stays there while it
    trains on). A method that does not train (the exact conversion, one call per object) enters at its own final
    budget, and so does a run of a STEP_MATCHED kind that took fewer gradient steps by then than every scratch
    GFlowNet of the same (task, seed) did: it is never reported under-trained, only at its own larger budget. A run
    whose first evaluation is already past the budget (MCMC's chains start with a call each) enters at that first
    evaluation, the least budget it has; so does a run that has called the reward nowhere within the budget (one
    below its first batch) but does later: its first evaluation with a call, not its untrained start. ``own_budget``
    marks the rows at their own budget."""
    keys = ["task", "method", "seed"]
    trained = curves[~curves["kind"].isin(NOT_TRAINED)]
    # a run's start before any call is no result of a run that calls the reward later (what it enters at otherwise
    # always has a call, past the start)
    calls = trained["unique_reward_calls"]
    trained = trained[(calls > 0) | (calls.groupby([trained[k] for k in keys]).transform("max") == 0)]
    within = trained[trained["unique_reward_calls"] <= budget]
    at = _last(within, keys).assign(own_budget=False)
    # the fewest of the scratch GFlowNets' (a compute-matched one, scratch_matched, trains for longer by design)
    scratch_steps = at[at["kind"] == "scratch"].groupby(["task", "seed"])["step"].min()
    matched = at["kind"].isin(STEP_MATCHED)
    if matched.any() and len(scratch_steps):
        need = scratch_steps.reindex(pd.MultiIndex.from_frame(at[["task", "seed"]])).to_numpy()
        at = at[~(matched.to_numpy() & (at["step"].to_numpy() < need))]
    first = trained.loc[trained.groupby(keys)["step"].idxmin()]
    early = first[~first.set_index(keys).index.isin(within.set_index(keys).index)].assign(own_budget=True)
    final = _last(curves, keys).assign(own_budget=True)
    late = final[~final.set_index(keys).index.isin(at.set_index(keys).index.append(early.set_index(keys).index))]
    return pd.concat([at, early, late]).sort_values(keys).reset_index(drop=True)


def _last(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Each group's last evaluation (its largest step)."""
    return frame.loc[frame.groupby(keys)["step"].idxmax()]


def paired_at(curves: pd.DataFrame, at: pd.DataFrame, a: str, b: str, budget: float) -> pd.DataFrame:
    """Methods ``a`` and ``b`` per (task, seed), both read at one number of distinct calls (``_read_at``): the
    budget, or, where either entered ``at`` at its own larger budget (``at_distinct_budget``), the larger of the
    two; the end of a run that ended before it; the first evaluation of a run whose first is past it (MCMC's chains
    start with a call each). Read at its last evaluation within, a run would lose what it found since, and of two
    equal runs the one evaluated more often would win: "OC-GFN minus control" never sets a run at 2,400 calls
    against one at 2,200."""
    keys = ["task", "seed"]
    curves = curves.reset_index(drop=True)
    pa, pb = (at[at["method"] == m].set_index(keys) for m in (a, b))
    common = pa.index.intersection(pb.index)
    if not len(common):  # no (task, seed) holds both: no pairs
        return curves.iloc[:0]
    limit = pd.Series(float(budget), index=common)
    for side in (pa, pb):
        own = side.loc[common, "own_budget"].astype(bool)
        limit = limit.where(~own, np.maximum(limit, side.loc[common, "unique_reward_calls"].astype(float)))
    rows = curves[curves["method"].isin((a, b))].join(limit.rename("limit"), on=keys, how="inner")
    span = rows.groupby([*keys, "method"])["unique_reward_calls"].agg(["min", "max"]).astype(float)
    ends = span["max"].groupby(level=keys).min()
    calls = np.maximum(np.minimum(ends, limit.reindex(ends.index)), span["min"].groupby(level=keys).max())
    out = [_read_at(run, float(calls[(task, seed)])) for (task, seed, _), run in rows.groupby([*keys, "method"])]
    return pd.DataFrame(out).reset_index(drop=True) if out else curves.iloc[:0]


INTERPOLATED = (*SEQUENCE_METRICS, NOVEL)  # of the objects queried so far: they move with the calls


def _read_at(run: pd.DataFrame, calls: float) -> pd.Series:
    """One run's curve at ``calls`` distinct calls: its last evaluation within them, or, where the next evaluation
    is past them, the search metrics interpolated linearly between the two (``unique_reward_calls`` then ``calls``).
    A run whose first evaluation is already past them (MCMC's chains start with a call each) enters at it."""
    run = run.sort_values("step")
    within = run[run["unique_reward_calls"] <= calls]
    if not len(within):
        return run.iloc[0]
    lo = within.iloc[-1]
    after = run[run["step"] > lo["step"]]
    if lo["unique_reward_calls"] == calls or not len(after):
        return lo
    hi = after.iloc[0]
    share = (calls - lo["unique_reward_calls"]) / (hi["unique_reward_calls"] - lo["unique_reward_calls"])
    out = lo.copy()
    for col in INTERPOLATED:
        if col in run:
            out[col] = lo[col] + share * (hi[col] - lo[col])
    out["unique_reward_calls"] = calls
    return out


def _best(at: pd.DataFrame, rows: pd.Series, metric: str) -> str | None:
    """The method among ``rows`` with the highest mean ``metric``, its mean over tasks of its per-task means,
    among the methods present on the most tasks (None if there is none): tasks differ in scale, so a method
    present on only some of them (within the budget on one, past it on another) would otherwise win or lose by
    which tasks its mean covers. Seeds are replicates: a method missing one is still compared."""
    frame = at[rows].dropna(subset=[metric])
    if frame.empty:
        return None
    tasks = frame.groupby("method")["task"].nunique()
    frame = frame[frame["method"].isin(tasks[tasks == tasks.max()].index)]
    means = frame.groupby(["method", "task"])[metric].mean().groupby("method").mean()
    return str(means.idxmax())


def adapted(models: dict[str, dict[str, str]] | None, env: str, method: str) -> str:
    """What ``method`` adapts on ``env`` as the verdict names it (``plan.adapted_models``), an OC-GFN by default."""
    return (models or {}).get(env, {}).get(method, "OC-GFN")


def verdict_table(curves: pd.DataFrame, budgets: dict[str, int | None], twins: dict[str, str] | None = None,
                  models: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """What pre-training buys, per domain, at equal distinct reward calls: each OC-GFN method minus its twin
    on the no-pre-training control (``twins``, ``plan.control_twins``: the same entry but ``pretrained``; without
    it, per adaptation kind its best OC-GFN method minus its best control, which may pair two algorithms), and
    the best method within the budget against the best scratch GFlowNet and against MCMC (and, where a run at
    its own larger budget does better, that run against scratch, on a row of its own); per (task, seed)
    differences, mean and 95% interval. ``models``: per environment, what each method adapts (``plan.adapted_models``:
    an OC-GFN or the GCRL baseline; default an OC-GFN), which names its comparison."""
    if not len(curves) or "pretrained" not in curves:
        return pd.DataFrame()
    rows = []
    for env, df in curves.groupby("env", sort=False):
        budget = budgets.get(env)
        if budget is None:
            budget = default_budget(df, "unique_reward_calls")
        at = at_distinct_budget(df, budget)
        control = at["pretrained"] == "control"
        keyed, keyed_within = at.set_index(["task", "seed"]), at[~at["own_budget"]].set_index(["task", "seed"])
        for metric in (*VERDICT_METRICS, *_with_data(df, (NOVEL,))):
            pairs = []
            for kind in ADAPTATION_KINDS:
                if kind in SAME_SEARCH:  # its search is its control's by construction: its final sampler is
                    continue  # compared instead (sampler_verdict)
                of_kind = at["kind"] == kind
                if twins is None:
                    pairs.append((f"{kind}: OC-GFN - control", _best(at, of_kind & ~control, metric),
                                  _best(at, of_kind & control, metric), None))
                    continue
                present = set(at.loc[of_kind, "method"])
                pairs += [(f"{kind}: {adapted(models, env, a)} - control", a, twins[a], None)
                          for a in dict.fromkeys(at.loc[of_kind, "method"]) if a in twins and twins[a] in present]
            # "best" at equal distinct calls is chosen among the runs within the budget; where a run that
            # entered at its own larger budget (the exact conversion) does better, it gets its own row
            within = ~at["own_budget"]
            best = _best(at, within & (at["kind"] != "random"), metric)
            scratch, mcmc = _best(at, at["kind"] == "scratch", metric), _best(at, at["kind"] == "mcmc", metric)
            pairs.append(("best - best scratch", best, scratch, keyed_within))
            pairs.append(("best - MCMC", best, mcmc, keyed_within))
            overall = _best(at, at["kind"] != "random", metric)
            if overall != best:
                pairs.append(("best at its own budget - best scratch", overall, scratch, keyed))
            # an OC-GFN method and its control are read at one budget per (task, seed) (``paired_at``: frame None);
            # the best-method rows compare what each reached within the budget, or on their own row at its own
            for comparison, a, b, frame in pairs:
                if a is None or b is None or a == b:
                    continue
                both = paired_at(df, at, a, b, budget).set_index(["task", "seed"]) if frame is None else frame
                diff = (both[both["method"] == a][metric] - both[both["method"] == b][metric]).dropna()
                mean, low, high = interval(diff)
                calls = {m: float(both.loc[both["method"] == m, "unique_reward_calls"].mean()) for m in (a, b)}
                rows.append({"env": env, "distinct_calls": int(budget), "metric": metric, "comparison": comparison,
                             "a": a, "b": b, "a_minus_b": mean, "ci95_low": low, "ci95_high": high,
                             "pairs": len(diff), "a_calls": calls[a], "b_calls": calls[b]})
    return pd.DataFrame(rows)


