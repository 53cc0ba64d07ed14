"""Result tables and the paper-style summary page, built only from the collected parquet tables."""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import pandas as pd


def _mean_std(df: pd.DataFrame, keys: list[str], cols: list[str]) -> pd.DataFrame:
    """mean +- std over seeds, as strings, with the number of seeds."""
    g = df.groupby(keys, sort=False)
    out = g.size().rename("seeds").to_frame()
    for c in cols:
        m, s = g[c].mean(), g[c].std().fillna(0.0)
        out[c] = [f"{a:.4g} ± {b:.2g}" for a, b in zip(m, s)]
    return out.reset_index()


def pretrain_table(pretrain: pd.DataFrame) -> pd.DataFrame:
    """Final success rates per environment and pre-training variant."""
    final = pretrain.loc[pretrain.groupby(["env", "variant", "seed"])["step"].idxmax()]
    return _mean_std(final, ["env", "variant"], ["step", "success_sample", "success_greedy"])


def evaluation_table(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Exact and sample-based metrics of every final policy, aggregated over seeds."""
    return _mean_std(evaluation, ["env", "task", "method"],
                     ["l1", "kl", "l1_empirical", "modes_found", "modes_total", "top100_reward"])


def budget_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Every adapted method at its final budget against the scratch GFlowNet at the same number of
    training steps, of reward calls and of distinct reward calls (its last evaluation within each
    budget; 'scratch_*' is NaN where scratch never evaluated that early)."""
    rows = []
    for (env, task, seed), df in curves.groupby(["env", "task", "seed"]):
        scratch = df[df["kind"] == "scratch"].sort_values("step")
        for method, m in df[df["kind"] != "scratch"].groupby("method"):
            last = m.loc[m["step"].idxmax()]
            row = {"env": env, "task": task, "seed": seed, "method": method, "steps": last["step"],
                   "reward_calls": last["reward_calls"], "unique_reward_calls": last["unique_reward_calls"],
                   "l1": last["l1"]}
            for label, col in (("steps", "step"), ("calls", "reward_calls"), ("unique_calls", "unique_reward_calls")):
                within = scratch[scratch[col] <= last[col]]
                row[f"scratch_l1_same_{label}"] = within["l1"].iloc[-1] if len(within) else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    caption = html.escape(Path(path).stem)
    return (f'<figure><img src="data:image/png;base64,{data}" style="max-width:100%">'
            f"<figcaption>{caption}</figcaption></figure>")


def summary_page(pretrain: pd.DataFrame, evaluation: pd.DataFrame, curves: pd.DataFrame, environment: pd.DataFrame,
                 figures: list[str], out_html: str, out_md: str) -> None:
    """A self-contained HTML page (figures embedded) and a Markdown twin with the same tables."""
    tables = [("Pre-training: final success rate (sampled and greedy rollouts, all outcomes)",
               pretrain_table(pretrain)),
              ("Adaptation: exact L1 / KL(R/Z || P) of the final policy, sample metrics", evaluation_table(evaluation)),
              ("Equal budgets: each method at its final budget vs the scratch GFlowNet at the same steps / calls",
               budget_table(curves))]
    env_line = ", ".join(f"{k}={v}" for k, v in environment.iloc[0].items())
    parts = ["<html><head><meta charset='utf-8'><title>OC-GFN pipeline results</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;"
             "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>",
             "<h1>Pre-training and adapting outcome-conditioned GFlowNets</h1>",
             f"<p>Software and device: {html.escape(env_line)}</p>"]
    md = ["# Pre-training and adapting outcome-conditioned GFlowNets", "", f"Software and device: {env_line}", ""]
    for title, table in tables:
        parts += [f"<h2>{html.escape(title)}</h2>", table.to_html(index=False, float_format=lambda v: f"{v:.4g}")]
        md += [f"## {title}", "", table.to_markdown(index=False, floatfmt=".4g"), ""]
    parts += ["<h2>Figures</h2>", *[_img(Path(f)) for f in figures], "</body></html>"]
    rel = [os.path.relpath(f, Path(out_md).parent) for f in figures]
    md += ["## Figures", "", *[f"![{Path(f).stem}]({r})" for f, r in zip(figures, rel)], ""]
    Path(out_html).parent.mkdir(parents=True, exist_ok=True)
    Path(out_html).write_text("\n".join(parts))
    Path(out_md).write_text("\n".join(md))
