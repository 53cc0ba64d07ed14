"""Figures, drawn only from the parquet tables the workflow wrote."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")


def _save(grid, path: str | Path) -> None:
    fig = grid.figure if hasattr(grid, "figure") else grid
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def pretrain_success(pretrain: pd.DataFrame, path: str | Path) -> None:
    """Success rate vs pre-training steps, one line per variant (the OT / contrastive ablations)."""
    long = pretrain.melt(id_vars=["env", "variant", "seed", "step"], value_vars=["success_sample", "success_greedy"],
                         var_name="rollout", value_name="success rate")
    long["rollout"] = long["rollout"].str.replace("success_", "")
    grid = sns.relplot(data=long, x="step", y="success rate", hue="variant", style="rollout", col="env",
                       kind="line", errorbar="sd", height=3.2, aspect=1.3, facet_kws={"sharex": False})
    grid.set(ylim=(-0.02, 1.02))
    _save(grid, path)


def _empty(path: str | Path, message: str) -> None:
    """A placeholder figure, so the report's figure list does not depend on which domains ran."""
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    _save(fig, path)


def adaptation_curves(curves: pd.DataFrame, x: str, path: str | Path, y: str = "l1") -> None:
    """A metric of every trained method vs ``x`` (steps or reward calls), per task; the exact
    conversions (no training) are horizontal lines against steps and points at their budget."""
    curves = curves[curves[y].notna()] if y in curves else curves.iloc[:0]
    if curves.empty:
        _empty(path, f"no {y} in any adaptation curve")
        return
    # One panel per (env, task) that has curves, wrapped: tasks belong to one domain each, so an env x task
    # grid would be mostly empty panels (and drawing a hundred empty axes took a minute per figure).
    curves = curves.assign(panel=curves["env"] + ": " + curves["task"])
    panels = list(dict.fromkeys(curves["panel"]))
    trained = curves[curves["kind"] != "exact"]
    # markers: a curve with one evaluated point (exact L1 only at the end on large spaces) is still seen
    grid = sns.relplot(data=trained, x=x, y=y, hue="method", kind="line", errorbar="sd", height=3.0, aspect=1.2,
                       marker="o", markersize=5,
                       col="panel", col_order=panels, col_wrap=min(6, len(panels)),
                       facet_kws={"sharex": False, "sharey": False})
    grid.set_titles("{col_name}")
    exact = curves[curves["kind"] == "exact"]
    palette = dict(zip(exact["method"].unique(), sns.color_palette("dark", exact["method"].nunique())))
    for panel, ax in grid.axes_dict.items():
        for method, rows in exact[exact["panel"] == panel].groupby("method"):
            if x == "step":  # no training: its value holds at every step
                ax.axhline(rows[y].mean(), ls="--", lw=1, color=palette[method], label=method)
            else:  # a single point at its own budget (one reward call per outcome)
                ax.plot(rows[x].mean(), rows[y].mean(), marker="o", ls="", color=palette[method], label=method)
    if x != "step":
        grid.set(xscale="log")
        for ax in grid.axes.flat:  # minor-tick labels of a narrow log range overprint each other
            ax.xaxis.set_minor_formatter(NullFormatter())
    if y in ("l1", "kl"):
        grid.set(yscale="log")
    handles, labels = [], []
    for ax in grid.axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if grid.legend is not None:
        grid.legend.remove()
    grid.figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    _save(grid, path)


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
        for j, (title, df, weight) in enumerate(panels):
            img = np.zeros((side, rows))
            w = df[weight].to_numpy() if weight else np.full(len(df), 1.0 / max(len(df), 1))
            # Collected tables hold every domain, so grid coordinates arrive as floats (NaN elsewhere).
            second = df["x1"].to_numpy(dtype=int) if rows > 1 else np.zeros(len(df), dtype=int)
            np.add.at(img, (df["x0"].to_numpy(dtype=int), second), w)
            ax = axes[i, j]
            ax.imshow(img.T, origin="lower", cmap="viridis", interpolation="nearest",
                      aspect="auto" if rows == 1 else "equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
            if j == 0:
                ax.set_ylabel(task)
    fig.suptitle(f"{env}: target vs sampled terminal distributions", fontsize=9)
    _save(fig, path)


def top_molecules(samples: pd.DataFrame, env: str, task: str, path: str | Path, per_method: int = 6) -> None:
    """The best distinct molecules each final sampler drew for one task (RDKit grid, a row per method)."""
    from rdkit import Chem
    from rdkit.Chem import Draw

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
