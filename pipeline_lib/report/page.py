"""The summary page a reader opens first: a verdict per domain, its headline figure, then the tables and
every figure. Self-contained HTML (figures embedded, no network, printable) and a Markdown twin, both
from the collected parquet tables only (``report.summary`` computes the tables)."""
from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline_lib.report.summary import (
    SAME_SEARCH,
    UNDER_TRAINED,
    budget_table,
    evaluation_table,
    number,
    pretrain_table,
    sampler_verdict,
    scales_differ,
    sequence_table,
    under_trained,
    verdict_table,
    window_table,
)

# Which way is better, per column (the best value of each block of rows is marked); others are not marked.
HIGHER = {"success_sample", "success_greedy", "modes_found", "novel_modes_found", "modes_in_samples", "top100_reward",
          "top100_diversity", "unique_fraction", "validity", "top100_scaffolds", "win_rate_vs_scratch"}
LOWER = {"l1", "kl", "l1_empirical"}
HEADERS = {"step": "steps", "steps": "steps", "reward_calls": "reward calls", "unique_reward_calls": "distinct calls",
           "seconds": "seconds (wall, set-up incl.)", "distinct_calls": "budget (distinct calls)",
           "a_calls": "a: distinct calls", "b_calls": "b: distinct calls", "l1": "exact L1", "kl": "KL(R/Z||P)",
           "l1_empirical": "empirical L1", "a_minus_b": "a - b", "ci95_low": "95% low", "ci95_high": "95% high",
           "pairs": "n (task, seed pairs)", "n": "n", "success_sample": "success (sampled)",
           "success_greedy": "success (greedy)", "modes_found": "modes found",
           "novel_modes_found": "novel modes (not in the data)", "top100_reward": "top-100 reward",
           "top100_diversity": "top-100 diversity", "win_rate_vs_scratch": "win rate vs scratch",
           "modes_in_samples": "modes among the final samples", "own_budget": "at its own budget"}
CAPTIONS = {
    "pretrain_success": "Pre-training success rate (the share of outcomes y whose y-conditioned sampler ends at y) "
                        "against steps, per variant; solid sampled, dashed greedy (tables/pretrain.parquet).",
    "pretrain_lengths": "Per level band (moves from s0; on sequences the length) at the last pre-training step: "
                        "the share of explorer outcomes, on-policy goals and evaluation outcomes (the first variant "
                        "listed, named in the title), and each variant's sampled and greedy success "
                        "(tables/pretrain_bands.parquet).",
    "search": "Search: modes found (and, on domains with a data set, the modes outside its training split), top-100 "
              "mean reward and diversity of the distinct objects each method has queried, "
              "against distinct reward calls; one line per seed (seeds spend calls at different steps); markers "
              "(diamond, square, ...): methods that do not train, at their own budget "
              "(tables/finetune_curves.parquet).",
    "l1": "Exact L1 between each policy's terminal distribution and R/Z, against training steps (mean and sd over "
          "seeds), distinct reward calls and wall-clock seconds (one line per seed); methods that do not train: "
          "dashed, dotted or dash-dotted lines against steps, markers elsewhere (tables/finetune_curves.parquet).",
    "heatmaps": "Target R/Z next to each final sampler's empirical distribution (tables/samples.parquet).",
    "molecules": "The best distinct molecules each final sampler drew for this task (tables/samples.parquet).",
    "descriptor": "Descriptor outcomes y = phi(x): per dimension and bin, the share of y-conditioned samples whose "
                  "descriptor is y, over the outcomes pre-training met; the title gives the outcome coverage "
                  "(tables/outcomes.parquet).",
}
STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1150px;margin:0 auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em;margin-top:.8em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
nav{background:#f6f6f6;padding:.5em 1em;border-radius:6px}nav a{margin-right:1em}
table{border-collapse:collapse;font-size:12px;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}td.best{font-weight:700;
background:#e8f4e8}td.text{text-align:left}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:12px;
color:#555}.verdict li{margin:.3em 0}.note{font-size:12px;color:#555}.scroll{overflow-x:auto;max-width:100%}
@media print{nav{display:none}h2{page-break-before:auto}figure,table{page-break-inside:avoid}}
"""
# lets a browser check (tests/test_browser.py) read, from the DOM, whether every figure rendered
CHECK_SCRIPT = """<script>
window.addEventListener('error', function (event) {
  if (event.target !== window) return;  // a failed image is counted below, not as a script error
  document.body.dataset.jsErrors = String(Number(document.body.dataset.jsErrors || 0) + 1); });
window.addEventListener('load', function () {
  var broken = Array.prototype.filter.call(document.images, function (i) { return !i.complete || !i.naturalWidth; });
  document.body.dataset.images = String(document.images.length);
  document.body.dataset.brokenImages = String(broken.length);
  document.body.dataset.height = String(document.documentElement.scrollHeight); });
</script>"""


def _lead(text) -> float:
    """The leading number of a formatted cell ('0.412 [0.39, 0.43]' -> 0.412), NaN if none."""
    if isinstance(text, (int, float)):
        return float(text)
    match = re.match(r"\s*(-?[\d,]*\.?\d+(?:e[-+]?\d+)?)", str(text))
    return float(match.group(1).replace(",", "")) if match else float("nan")


def _best_cells(table: pd.DataFrame) -> set[tuple[int, str]]:
    """(row, column) of the best value of each marked column within each block of rows that compare (the
    same env and task where the table has them, and the same side of the budget)."""
    keys = [k for k in ("env", "task", "own_budget") if k in table]  # rows past a budget compare among themselves
    blocks = [rows.index for _, rows in table.groupby(keys, sort=False)] if keys else [table.index]
    best = set()
    for rows in blocks:
        for col in table.columns:
            if col not in HIGHER | LOWER:
                continue
            values = table.loc[rows, col].map(_lead).dropna()
            if len(values) > 1 and values.nunique() > 1:
                target = values.max() if col in HIGHER else values.min()
                winners = values.index[values == target]
                if len(winners) <= len(values) / 2:  # a value most rows share marks nothing
                    best |= {(i, col) for i in winners}
    return best


def _cell(value) -> str:
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return number(float(value)) if is_number else str(value)


def _html_table(table: pd.DataFrame) -> str:
    """A table in a horizontally scrolling box (wide tables never widen the page), best cells marked."""
    best = _best_cells(table)
    head = "".join(f"<th>{html.escape(HEADERS.get(c, c))}</th>" for c in table.columns)
    rows = []
    for i, row in table.iterrows():
        cells = []
        for c in table.columns:
            classes = ("best " if (i, c) in best else "") + ("text" if pd.isna(_lead(row[c])) else "")
            cells.append(f"<td class='{classes.strip()}'>{html.escape(_cell(row[c]))}</td>")
        cells = "".join(cells)
        rows.append(f"<tr>{cells}</tr>")
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def _md_table(table: pd.DataFrame) -> str:
    best = _best_cells(table)
    shown = table.copy().astype(object)
    for i, row in table.iterrows():
        for c in table.columns:
            text = _cell(row[c])
            shown.at[i, c] = f"**{text}**" if (i, c) in best else text
    return shown.rename(columns=lambda c: HEADERS.get(c, c)).to_markdown(index=False)


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).stem)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _signed(v: float) -> str:
    return ("+" if v > 0 else "") + number(v)


def _pair_line(name: str, r: pd.Series) -> str:
    spread = ("" if r["pairs"] < 2 or r["ci95_low"] == r["ci95_high"]
              else f", 95% interval [{number(r['ci95_low'])}, {number(r['ci95_high'])}]")
    return f"{name}, {r['comparison']}: {r['a']} - {r['b']} = {_signed(r['a_minus_b'])}{spread}"


def verdict_lines(verdict: pd.DataFrame, evaluation: pd.DataFrame, env: str, headline: str,
                  sampler: pd.DataFrame | None = None) -> list[str]:
    """What a reader should take away from one domain, as sentences. Search metrics at equal distinct calls
    (the verdict table: modes where a domain counts them, and the novel ones where it has a data set, else top-100
    reward), and the final samplers of the methods whose search is their control's by construction (the exact
    conversion queries every object: ``sampler``, ``summary.sampler_verdict``); on a domain that leads with the
    exact L1 (grids: every method sees every cell within a few steps, so distinct calls say nothing) the final
    samplers' exact L1 instead, best first, then each OC-GFN method minus its control."""
    own = sampler[sampler["env"] == env] if sampler is not None and len(sampler) else pd.DataFrame()
    if headline == "l1":
        e = evaluation[(evaluation["env"] == env) & evaluation["l1"].notna()]
        if not len(e):
            return []
        means = e.groupby("method")["l1"].mean().sort_values()
        tasks = e["task"].nunique()
        ranked = ", ".join(f"{m} {number(v)}" for m, v in means.items())
        over = f"{tasks} task{'s' if tasks != 1 else ''}"
        lines = [f"exact L1 of the final samplers to R/Z, mean over {over}, best first: {ranked}"]
        for _, r in (own[own["metric"] == "l1"] if len(own) else own).iterrows():
            lines.append(_pair_line("exact L1 of the final sampler (lower is better)", r)
                         + f" (n = {int(r['pairs'])} task-seed pairs)")
        return lines
    lines = []
    v = verdict[verdict["env"] == env] if len(verdict) else verdict
    for metric in ("modes_found", "novel_modes_found", "top100_reward"):  # novel: domains with a data set
        rows = v[v["metric"] == metric] if len(v) else v
        if metric == "top100_reward" and lines:
            break
        if not len(rows):
            continue
        name = HEADERS.get(metric, metric)
        for _, r in rows.iterrows():
            lines.append(_pair_line(name, r) + f" (n = {int(r['pairs'])} task-seed pairs; at "
                         f"{number(r['distinct_calls'])} distinct calls, {r['a']} used {number(r['a_calls'])}, "
                         f"{r['b']} {number(r['b_calls'])})")
    for _, r in (own[own["kind"].isin(SAME_SEARCH)] if len(own) else own).iterrows():
        name, better = {"l1": ("exact L1 of the final sampler", "lower")}.get(
            r["metric"], (HEADERS.get(r["metric"], r["metric"]), "higher"))
        lines.append(_pair_line(f"{name} ({better} is better; the search queries every object, as the control's "
                                "does)", r) + f" (n = {int(r['pairs'])} task-seed pairs)")
    return lines


def summary_page(pretrain: pd.DataFrame, evaluation: pd.DataFrame, curves: pd.DataFrame, environment: pd.DataFrame,
                 figures: list[tuple[str, str, str, str]], out_html: str, out_md: str,
                 budgets: dict[str, int | None] | None = None, per_task: list[str] = (),
                 headlines: dict[str, str] | None = None, windows: pd.DataFrame | None = None,
                 twins: dict[str, str] | None = None, models: dict[str, dict[str, str]] | None = None) -> None:
    """Write the summary page. ``figures``: (kind, env, task, path) of every figure; ``headlines``: the kind
    each domain's section leads with; ``budgets``: each domain's distinct-call budget (None: the smallest
    final one); domains in ``per_task`` (molecule objectives), and any whose tasks reward on different scales
    (``scales_differ``), get a table row per task and method; ``windows``:
    the descriptor-window sampler's rows (descriptor variants), if any; ``twins``: each OC-GFN method's
    no-pre-training twin (``plan.control_twins``); ``models``: per environment, what each adapts
    (``plan.adapted_models``)."""
    budgets, headlines = budgets or {}, headlines or {}
    verdict = verdict_table(curves, budgets, twins, models) if len(curves) else pd.DataFrame()
    kinds = dict(zip(curves["method"], curves["kind"])) if len(curves) and "kind" in curves else {}
    sampler = sampler_verdict(evaluation, kinds, twins, models)
    weak = under_trained(pretrain, curves)
    budget = budget_table(curves) if len(curves) else pd.DataFrame()
    adapted = [env for env in dict.fromkeys(curves["env"])] if len(curves) else []
    env_line = ", ".join(f"{k} {v}" for k, v in environment.iloc[0].items() if str(v).strip())  # no "gpu ,"
    domains = f"{len(adapted)} adapted domain{'s' if len(adapted) != 1 else ''}"
    seeds = sorted(curves["seed"].unique()) if len(curves) else sorted(pretrain["seed"].unique())
    h = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>OC-GFN pipeline results</title>",
         f"<style>{STYLE}</style>{CHECK_SCRIPT}</head><body>",
         "<h1>Pre-training and adapting outcome-conditioned GFlowNets: results</h1>",
         f"<p class=note>{domains}, seeds {', '.join(map(str, seeds))}; software and device: "
         f"{html.escape(env_line)}. Intervals: 95% Student-t intervals of the mean over replicates (seeds, or tasks x "
         f"seeds), shown only where n &gt; 1 and cut to the values a column can take (counts from 0, rates to 1); "
         f"bold: the best value of a column among the rows that compare (one domain and task, one side of the "
         f"budget), unless most of them share it.</p>"]
    toc = [("verdict", "Verdict"), *[(f"env-{e}", e) for e in adapted], ("tables", "Tables"),
           ("figures", "All figures")]
    h.append("<nav>" + "".join(f"<a href='#{a}'>{html.escape(t)}</a>" for a, t in toc) + "</nav>")
    md = ["# Pre-training and adapting outcome-conditioned GFlowNets: results", "",
          f"{domains}, seeds {', '.join(map(str, seeds))}; software and device: {env_line}.", ""]

    h.append("<h2 id=verdict>Verdict</h2><p class=note>What pre-training buys per domain at equal distinct reward "
             "calls (OC-GFN minus its no-pre-training control, of each adaptation kind; the goal-conditioned RL "
             "baseline's adaptations minus the same control are named GCRL baseline) and how the best method "
             "compares with the best scratch GFlowNet and MCMC. The exact conversion, one call per object, and an "
             "amortized run with fewer gradient steps than scratch by the budget enter at their own budget; "
             "an OC-GFN method and its control are both read at the same number of distinct calls, the fewer "
             "that either reached within the larger of their two budgets (the other run interpolated between its "
             "evaluations either side).</p>")
    md += ["## Verdict", ""]
    for env in adapted:
        lines = (verdict_lines(verdict, evaluation, env, headlines.get(env, "search"), sampler)
                 or ["no comparison at a shared budget"])
        lines += [f"caution: pre-training {variant!r} ended at sampled success {number(value)} (below "
                  f"{number(UNDER_TRAINED)}): the adaptations of it above adapt a model that reaches few of its "
                  "outcomes, not the method at its best" for variant, value in weak.get(env, [])]
        h.append(f"<h3>{html.escape(env)}</h3><ul class=verdict>"
                 + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")
        md += [f"### {env}", "", *[f"- {line}" for line in lines], ""]

    by_kind = {(kind, env, task): path for kind, env, task, path in figures}
    for env in adapted:
        h.append(f"<h2 id='env-{html.escape(env)}'>{html.escape(env)}</h2>")
        md += [f"## {env}", ""]
        kind = headlines.get(env, "search")
        if (kind, env, "") in by_kind:
            h.append(_img(by_kind[(kind, env, "")], CAPTIONS[kind]))
            md += [f"![{env} {kind}]({os.path.relpath(by_kind[(kind, env, '')], Path(out_md).parent)})", ""]
        own = curves[curves["env"] == env]  # tasks listed apart where the domain says or their scales differ
        table, used = sequence_table(curves, env, budgets.get(env), env in per_task or scales_differ(own))
        unit = "distinct reward calls" if "unique_reward_calls" in table else "reward calls"
        title = f"Objects queried within {number(used)} {unit}"
        h += [f"<h3>{html.escape(title)}</h3>", _html_table(table)]
        md += [f"### {title}", "", _md_table(table), ""]

    tables = [("Verdict table (a - b per task and seed, mean and 95% interval)", verdict),
              ("Final samplers, each method that adapts a pre-trained model (OC-GFN or GCRL baseline) - its "
               "no-pre-training control (per task and seed, mean and 95% interval)", sampler),
              ("Pre-training: final success rate on the evaluation outcomes", pretrain_table(pretrain)),
              ("Final samplers: exact L1 / KL of the policy (enumerable spaces) and metrics of its samples",
               evaluation_table(evaluation)),
              ("Descriptor-window sampler (no reward call): validity, uniqueness and the share of samples inside "
               "each window", window_table(windows)),
              ("Equal budgets: each method at its final budget vs the scratch GFlowNet at the same steps, reward "
               "calls, distinct calls and wall-clock seconds", budget)]
    h.append("<h2 id=tables>Tables</h2>")
    md += ["## Tables", ""]
    for title, table in tables:
        if len(table):
            h += [f"<h3>{html.escape(title)}</h3>", _html_table(table)]
            md += [f"### {title}", "", _md_table(table), ""]

    h.append("<h2 id=figures>All figures</h2>")
    md += ["## All figures", ""]
    for kind, env, task, path in figures:
        caption = f"{env}{' / ' + task if task else ''}: {CAPTIONS.get(kind, kind)}"
        h.append(_img(path, caption))
        md += [f"![{caption}]({os.path.relpath(path, Path(out_md).parent)})", ""]
    h.append("</body></html>")
    Path(out_html).parent.mkdir(parents=True, exist_ok=True)
    Path(out_html).write_text("\n".join(h))
    Path(out_md).write_text("\n".join(md))
