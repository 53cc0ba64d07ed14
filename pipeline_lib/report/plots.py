"""Figures, drawn only from the parquet tables the workflow wrote."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from pipeline_lib.report.summary import NOT_TRAINED  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")


def _save(grid, path: str | Path) -> None:
    fig = grid.figure if hasattr(grid, "figure") else grid
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def method_palette(methods: list[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per method, the same in every figure of a domain: fixed by the method's place in the domain's
    method list (``config.env_methods``). The ten distinct hues of tab10 first, then their light shades (tab20's odd
    entries): no two methods of a domain share a hue while it runs ten or fewer."""
    colours = (sns.color_palette("tab10", 10) + sns.color_palette("tab20", 20)[1::2]
               + sns.color_palette("husl", max(len(methods) - 20, 0)))
    return {m: colours[i] for i, m in enumerate(methods)}


def _legend(fig, axes, ncol: int = 4, y: float = 0.0) -> None:
    """One legend for the whole figure, below the panels (it fits whatever the number of panels); ``y``: its top,
    in figure coordinates (lower it below rotated tick labels)."""
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, y), ncol=min(ncol, len(labels)),
                   frameon=False, fontsize=8)


def pretrain_success(pretrain: pd.DataFrame, env: str, path: str | Path) -> int:
    """Success rate vs pre-training steps and vs wall-clock seconds of training on one domain, one line per
    variant (sampled solid, greedy dashed); returns the number of panels (0 where the domain has no
    pre-training rows; 1 for tables written before the ``seconds`` column)."""
    df = pretrain[pretrain["env"] == env]
    if df.empty:
        _empty(path, f"{env}: no pre-training rows")
        return 0
    xs = [x for x in ("step", "seconds") if x in df.columns and df[x].notna().any()]
    long = df.melt(id_vars=["variant", "seed", *xs], value_vars=["success_sample", "success_greedy"],
                   var_name="rollout", value_name="success rate")
    long["rollout"] = long["rollout"].str.replace("success_", "")
    # variants that draw on a data set also report success on its held-out objects (never trained on)
    held = [c for c in ("holdout_success_sample", "holdout_success_greedy") if c in df.columns]
    held_rows = df[df[held].notna().any(axis=1)] if held else df.iloc[:0]
    n = len(xs) + int(len(held_rows) > 0)
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 3.2), squeeze=False)
    variants = sorted(df["variant"].unique())  # one colour per variant in every panel
    for ax, x in zip(axes[0], xs):
        sns.lineplot(data=long, x=x, y="success rate", hue="variant", hue_order=variants, style="rollout",
                     style_order=["sample", "greedy"], errorbar="sd", ax=ax)
        ax.set(ylim=(-0.02, 1.02), xlabel="pre-training steps" if x == "step" else "training seconds (this machine)",
               title=f"{env}: pre-training success")
    if len(held_rows):
        rows = held_rows.melt(id_vars=["variant", "seed", "step"], value_vars=held, var_name="rollout",
                              value_name="success rate")
        rows["rollout"] = rows["rollout"].str.replace("holdout_success_", "")
        sns.lineplot(data=rows, x="step", y="success rate", hue="variant", hue_order=variants, style="rollout",
                     style_order=["sample", "greedy"], errorbar="sd", ax=axes[0][-1])
        axes[0][-1].set(ylim=(-0.02, 1.02), xlabel="pre-training steps", title=f"{env}: held-out data objects")
    _legend(fig, list(axes[0]))
    _save(fig, path)
    return n


def pretrain_lengths(bands: pd.DataFrame, env: str, path: str | Path) -> int:
    """Per level band (moves from s0; on sequences the length) at the last pre-training step: the share of the
    explorer's outcomes, of the on-policy goals and of the evaluation outcomes (one panel, for the first variant
    listed; the explorer piles up at the longest objects), and each variant's sampled and greedy success (one panel
    per rollout); mean over seeds. Returns the number of panels (0 where the domain has no band rows)."""
    df = bands[bands["env"] == env] if len(bands) else bands
    if df.empty:
        _empty(path, f"{env}: no pre-training band rows")
        return 0
    last = df[df["step"] == df.groupby(["variant", "seed"])["step"].transform("max")]
    order = last.sort_values("level_low")["band"].drop_duplicates().tolist()
    # the shares of one variant (the first listed): variants draw their goals differently, and a mean over
    # them would describe none
    shown = last["variant"].iloc[0]
    shares = last[last["variant"] == shown].melt(
        id_vars=["variant", "seed", "band"], value_vars=["eval_fraction", "explorer_fraction", "goal_fraction"],
        var_name="outcomes", value_name="share")
    shares["outcomes"] = shares["outcomes"].str.replace("_fraction", "").map(
        {"eval": "evaluation", "explorer": "explorer", "goal": "on-policy goals"})
    shares["share"] = shares["share"].astype(float)
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.2), sharex=True)
    sns.barplot(data=shares, x="band", y="share", hue="outcomes", order=order, errorbar=None, ax=axes[0],
                palette="Greys")
    axes[0].set(title=f"{env}: outcomes per level band ({shown})", xlabel="level band (moves from s0)",
                ylabel="share of outcomes")
    axes[0].legend(fontsize=7, frameon=False)
    for ax, rollout in zip(axes[1:], ("sample", "greedy")):
        sns.barplot(data=last, x="band", y=f"success_{rollout}", hue="variant", order=order, errorbar=None, ax=ax)
        ax.set(ylim=(0, 1.02), title=f"{rollout} success per band (last step)", xlabel="level band (moves from s0)",
               ylabel="success rate")
    _legend(fig, axes[1:])
    _save(fig, path)
    return 3


def descriptor_success(outcomes: pd.DataFrame, env: str, path: str | Path) -> int:
    """Descriptor variants (outcomes y = phi(x)): per dimension of the descriptor, the sampled conditional
    success of the outcomes pre-training met, by bin (mean over the outcomes with that bin and over seeds),
    one bar per variant; each title gives the outcome coverage (outcomes met / |Y|). Returns the panels."""
    df = outcomes[outcomes["env"] == env] if len(outcomes) else outcomes
    if df.empty:
        _empty(path, f"{env}: no descriptor outcome rows")
        return 0
    dims = [c[:-len("_range")] for c in df.columns if c.endswith("_range") and df[c].notna().any()]
    met = df[df["evaluated"].astype(bool)]
    coverage = df.groupby(["variant", "seed"])["evaluated"].mean().groupby("variant").mean()
    fig, axes = plt.subplots(1, len(dims), figsize=(3.6 * len(dims), 3.2), squeeze=False)
    variants = sorted(df["variant"].unique())
    for ax, dim in zip(axes[0], dims):
        order = df.sort_values(dim)[f"{dim}_range"].drop_duplicates().tolist()
        sns.barplot(data=met, x=f"{dim}_range", y="success_sample", hue="variant", hue_order=variants, order=order,
                    errorbar=None, ax=ax)
        ax.set(ylim=(0, 1.02), xlabel=f"{dim} bin", ylabel="sampled success", title=f"{env}: success per {dim}")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.suptitle("outcome coverage " + ", ".join(f"{v} {coverage[v]:.2f}" for v in variants), y=1.04, fontsize=9)
    _legend(fig, list(axes[0]), y=-0.08)
    _save(fig, path)
    return len(dims)


def _empty(path: str | Path, message: str) -> None:
    """A placeholder figure, so the report's figure list does not depend on which domains ran."""
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    _save(fig, path)


AXIS_LABELS = {"step": "training steps", "reward_calls": "reward calls", "unique_reward_calls": "distinct reward calls",
               "seconds": "wall-clock seconds", "l1": "exact L1 to R/Z", "kl": "KL(R/Z || P)",
               "modes_found": "modes found", "novel_modes_found": "novel modes (not in the data)",
               "top100_reward": "top-100 mean reward",
               "top100_diversity": "top-100 diversity"}


SEARCH_ROWS = [("modes_found", "unique_reward_calls"), ("novel_modes_found", "unique_reward_calls"),
               ("top100_reward", "unique_reward_calls"), ("top100_diversity", "unique_reward_calls")]
MAX_COLUMNS = 6  # panels per row of a curves figure
# an exact conversion's L1 below this is drawn at it (and the panel says so): its float round-off would otherwise
# set a log axis's bottom and squash every other curve into its top decade
DIVERGENCE_FLOOR = 1e-3
L1_ROWS = [("l1", "step"), ("l1", "unique_reward_calls"), ("l1", "seconds")]


def curves_figure(curves: pd.DataFrame, env: str, rows: list[tuple[str, str]], palette: dict,
                  path: str | Path) -> int:
    """One domain's adaptation curves: a row per (metric, x) of ``rows`` (several where there are more than
    MAX_COLUMNS tasks), a column per task, only the panels with data; every trained method a line (mean and sd
    over seeds against steps, one line per seed against calls and seconds, which differ between seeds), the exact
    conversions (no training) a horizontal line against steps and a point at their own budget otherwise. Returns
    the panels drawn."""
    df = curves[curves["env"] == env]
    rows = [(y, x) for y, x in rows if y in df and x in df and df[y].notna().any()]
    tasks = list(dict.fromkeys(df["task"]))
    panels = [(r, t) for r in rows for t in tasks if df.loc[df["task"] == t, r[0]].notna().any()]
    if not panels:
        _empty(path, f"{env}: none of its curves has these metrics")
        return 0
    width = min(len(tasks), MAX_COLUMNS)  # many tasks (TF-Bind-8's 30) wrap into several rows per metric
    per_metric = -(-len(tasks) // width)
    fig, axes = plt.subplots(len(rows) * per_metric, width, figsize=(3.3 * width, 2.6 * len(rows) * per_metric),
                             squeeze=False)
    for i in range(len(rows)):  # the slots after a metric's last task
        for k in range(len(tasks), per_metric * width):
            axes[i * per_metric + k // width, k % width].axis("off")
    for i, (metric, x) in enumerate(rows):
        for k, task in enumerate(tasks):
            ax, j = axes[i * per_metric + k // width, k % width], k % width
            data = df[(df["task"] == task) & df[metric].notna()]
            if data.empty:
                ax.axis("off")
                continue
            positive = data.loc[data[x] > 0, x]
            log_x = x != "step" and len(positive) and positive.max() / positive.min() > 100
            if log_x:  # a point at x = 0 (a curve's first row, before any call) has no place on a log axis
                data = data[data[x] > 0]
            once = data["kind"].isin(NOT_TRAINED)  # no training: one point (or line) at its own budget
            # an exact conversion's round-off (1e-7) would stretch a log axis over six empty decades; trained
            # curves keep their values
            clipped = metric == "l1" and bool((once & (data[metric] < DIVERGENCE_FLOOR)).any())
            if clipped:
                data = data.assign(**{metric: data[metric].where(~once, data[metric].clip(lower=DIVERGENCE_FLOOR))})
            trained, exact = data[~once], data[once]
            if len(trained) and x == "step":  # seeds share their evaluation steps: mean and sd
                sns.lineplot(data=trained, x=x, y=metric, hue="method", palette=palette, errorbar="sd",
                             marker="o", markersize=4, ax=ax)
            elif len(trained):  # calls and seconds differ between seeds: one line per seed, not a mean that zigzags
                sns.lineplot(data=trained, x=x, y=metric, hue="method", palette=palette, units="seed",
                             estimator=None, marker="o", markersize=3, lw=1, alpha=0.8, ax=ax)
            for n, (method, m) in enumerate(exact.groupby("method")):
                if x == "step":  # no training: its value holds at every step
                    ax.axhline(m[metric].mean(), ls=("--", ":", "-.")[n % 3], lw=1, color=palette.get(method),
                               label=method)
                else:  # one point at its own budget; shapes and sizes differ, so points that coincide (an exact
                    # conversion and its control query every object) all stay visible
                    ax.plot(m[x].mean(), m[metric].mean(), marker="DsoP^"[n % 5], ms=9 - 2 * (n % 3), ls="",
                            color=palette.get(method), label=method, alpha=0.9)
            if log_x:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
            values = data.loc[data[metric] > 0, metric]
            if metric == "l1" and len(values) and values.max() / values.min() > 100:
                ax.set_yscale("log")
            if clipped:
                ax.text(0.02, 0.02, f"exact below {DIVERGENCE_FLOOR:g}: drawn at {DIVERGENCE_FLOOR:g}", fontsize=6,
                        transform=ax.transAxes, color="0.35")
            ax.set(title=task if i == 0 or per_metric > 1 else "", xlabel=AXIS_LABELS.get(x, x),
                   ylabel=AXIS_LABELS.get(metric, metric) if j == 0 else "")
    fig.suptitle(env, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title above the panels
    _legend(fig, axes.flat, ncol=5)
    _save(fig, path)
    return len(panels)


def heatmaps(samples: pd.DataFrame, targets: pd.DataFrame, env: str, path: str | Path) -> None:
    """Target R/Z next to each method's empirical sample distribution (first two coordinates)."""
    targets, samples = targets[targets["env"] == env], samples[samples["env"] == env]
    tasks = list(targets["task"].unique())
    methods = list(samples["method"].unique())
    side = int(targets["x0"].max()) + 1
    rows = side if "x1" in targets else 1  # a 1-D grid is drawn as a strip
    fig, axes = plt.subplots(len(tasks), 1 + len(methods), figsize=(2.0 * (1 + len(methods)), 2.1 * len(tasks)),
                             squeeze=False)
    for i, task in enumerate(tasks):
        panels = [("target R/Z", targets[targets["task"] == task], "target_prob")]
        panels += [(m, samples[(samples["task"] == task) & (samples["method"] == m)], None) for m in methods]
        images = []
        for _, df, weight in panels:
            img = np.zeros((side, rows))
            w = df[weight].to_numpy() if weight else np.full(len(df), 1.0 / max(len(df), 1))
            # Collected tables hold every domain, so grid coordinates arrive as floats (NaN elsewhere).
            second = df["x1"].to_numpy(dtype=int) if rows > 1 else np.zeros(len(df), dtype=int)
            np.add.at(img, (df["x0"].to_numpy(dtype=int), second), w)
            images.append(img)
        # one colour scale per task, the target's: a flat sampler looks flat, and a collapsed one saturates
        # instead of washing out every other panel
        top = images[0].max() or max(img.max() for img in images) or 1.0
        for j, ((title, _, _), img) in enumerate(zip(panels, images)):
            ax = axes[i, j]
            ax.imshow(img.T, origin="lower", cmap="viridis", interpolation="nearest", vmin=0.0, vmax=top,
                      aspect="auto" if rows == 1 else "equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
            if j == 0:
                ax.set_ylabel(task)
    marginal = " (marginal over x0, x1)" if "x2" in targets and targets["x2"].notna().any() else ""
    fig.suptitle(f"{env}: target vs sampled terminal distributions{marginal}; each task on the target's colour "
                 "scale (above its peak saturates)", fontsize=9)
    _save(fig, path)


def top_molecules(samples: pd.DataFrame, env: str, task: str, path: str | Path, per_method: int = 6) -> None:
    """The best distinct molecules each final sampler drew for one task (RDKit grid, a row per method)."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    if "smiles" not in samples:  # no sampler ran on this task (a domain with ``methods: []``)
        samples = samples.assign(smiles=pd.Series(dtype=object))
    df = samples[(samples["env"] == env) & (samples["task"] == task) & (samples["smiles"].fillna("") != "")]
    mols, legends = [], []
    for method, rows in df.groupby("method", sort=True):
        best = rows.sort_values("reward", ascending=False).drop_duplicates("smiles").head(per_method)
        for smiles, reward in zip(best["smiles"], best["reward"]):
            mols.append(Chem.MolFromSmiles(smiles))
            legends.append(f"{method}  R={reward:.3f}")
        pad = per_method - len(best)  # keep one row per method
        mols += [Chem.Mol()] * pad
        legends += [""] * pad
    if not mols:
        _empty(path, f"{env}/{task}: no molecules sampled")
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Draw.MolsToGridImage(mols, molsPerRow=per_method, subImgSize=(220, 180), legends=legends).save(str(path))
