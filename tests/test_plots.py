"""Figures are drawn from parquet-shaped tables for any grid dimension."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline_lib.report import plots


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_heatmaps_any_dimension(tmp_path: Path, ndim: int) -> None:
    side, rng = 4, np.random.default_rng(0)
    cells = np.stack(np.meshgrid(*[np.arange(side)] * ndim, indexing="ij"), -1).reshape(-1, ndim)
    coords = {f"x{i}": cells[:, i] for i in range(ndim)}
    targets = pd.DataFrame({"env": "g", "task": "t", **coords, "target_prob": np.full(len(cells), 1 / len(cells))})
    pick = rng.integers(len(cells), size=50)
    samples = pd.DataFrame({"env": "g", "task": "t", "method": "m", **{k: v[pick] for k, v in coords.items()}})
    out = tmp_path / "heat.png"
    plots.heatmaps(samples, targets, "g", out)
    assert out.stat().st_size > 1000


def test_heatmaps_from_tables_that_mix_domains(tmp_path: Path) -> None:
    """Collected tables also hold sequence rows, so grid coordinates arrive as floats with NaN."""
    targets = pd.DataFrame({"env": "g", "task": "t", "x0": [0, 1, 2], "x1": [0, 1, 2], "target_prob": [0.2, 0.3, 0.5]})
    samples = pd.DataFrame({"env": "g", "task": "t", "method": "m", "x0": [0, 2], "x1": [1, 2]})
    other = pd.DataFrame({"env": "bits", "task": "b", "method": "m", "sequence": ["0101"]})
    targets = pd.concat([targets, other.drop(columns="method")], ignore_index=True)
    samples = pd.concat([samples, other], ignore_index=True)
    assert samples["x0"].dtype.kind == "f"
    out = tmp_path / "heat.png"
    plots.heatmaps(samples, targets, "g", out)
    assert out.stat().st_size > 1000


def _curves(envs: dict[str, list[str]]) -> pd.DataFrame:
    rows = []
    for env, tasks in envs.items():
        for task in tasks:
            for method, kind in (("scratch", "scratch"), ("exact", "exact")):
                for step in (0, 10, 100):
                    rows.append({"env": env, "task": task, "method": method, "kind": kind, "seed": 0, "step": step,
                                 "unique_reward_calls": 10 * step + 1, "seconds": 0.1 * step,
                                 "modes_found": step / 10, "top100_reward": 0.5, "top100_diversity": 1.0,
                                 "l1": 1.0 / (1 + step) if env == "grid" else np.nan})
    return pd.DataFrame(rows)


def test_curve_figures_draw_only_the_panels_with_data(tmp_path: Path) -> None:
    """One figure per domain: a column per task of that domain and a row per metric that has data there."""
    curves = _curves({"grid": ["a", "b", "c"], "seq": ["x", "y"]})
    palette = plots.method_palette(["scratch", "exact"])
    assert plots.curves_figure(curves, "seq", plots.SEARCH_ROWS, palette, tmp_path / "s.png") == 2 * 3
    assert plots.curves_figure(curves, "grid", plots.L1_ROWS, palette, tmp_path / "g.png") == 3 * 3
    assert plots.curves_figure(curves, "seq", plots.L1_ROWS, palette, tmp_path / "none.png") == 0  # no L1 there
    assert (tmp_path / "s.png").stat().st_size > 10_000 and (tmp_path / "none.png").exists()
    wider = plots.method_palette(["scratch", "exact", "other"])
    assert wider["scratch"] == palette["scratch"] and wider["exact"] == palette["exact"] != palette["scratch"]


def test_pretraining_figures_from_a_real_run(tmp_path: Path) -> None:
    """The pre-training figures of one domain from a short run's own tables: success vs steps and vs seconds,
    and the per-length-band panels; a domain without rows gets the placeholder (0 panels)."""
    import torch

    from pipeline_lib.domains.sequence.env import Sequence
    from pipeline_lib.ocgfn.pretrain import PretrainConfig, Pretrainer

    env = Sequence("ACGT", 6, min_length=2)
    cfg = PretrainConfig(steps=4, batch_size=16, hidden=16, layers=1, rnd_hidden=16, rnd_dim=8, eval_every=2,
                         eval_outcomes=64, conditioning="pairs", random_goals=0.5)
    trainer = Pretrainer(env, cfg, seed=0, device=torch.device("cpu"))
    metrics = trainer.run(None).assign(env="seq", variant="full", seed=0)
    bands = trainer.band_table().assign(env="seq", variant="full", seed=0)
    assert plots.pretrain_success(metrics, "seq", tmp_path / "s.png") == 2
    assert plots.pretrain_lengths(bands, "seq", tmp_path / "l.png") == 3
    assert plots.pretrain_lengths(bands, "other", tmp_path / "e.png") == 0
    assert plots.pretrain_success(metrics.drop(columns="seconds"), "seq", tmp_path / "old.png") == 1
    # a variant that drew on a data set adds the panel of its success on the held-out objects
    data = Pretrainer(env, PretrainConfig(**{**cfg.__dict__, "data_goals": 0.5, "random_goals": 0.25}), seed=0,
                      device=torch.device("cpu"), data=env.encode(["ACGT", "GGA"]), holdout=env.encode(["TTAC"]))
    both = pd.concat([metrics, data.run(None).assign(env="seq", variant="data", seed=0)])
    assert plots.pretrain_success(both, "seq", tmp_path / "d.png") == 3
    for name in ("s.png", "l.png", "e.png", "old.png", "d.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_an_exact_l1_at_round_off_does_not_set_the_log_axis(tmp_path: Path, monkeypatch) -> None:
    """An exact conversion's L1 of 1e-7 (float round-off) is drawn at the floor, so the other curves keep the axis."""
    curves = _curves({"grid": ["a"]})
    curves.loc[curves["method"] == "exact", "l1"] = 1e-7
    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.append(fig))
    plots.curves_figure(curves, "grid", plots.L1_ROWS, plots.method_palette(["scratch", "exact"]), tmp_path / "g.png")
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] > 1e-4
    assert any(f"drawn at {plots.DIVERGENCE_FLOOR:g}" in t.get_text() for t in ax.texts)


def test_every_figure_draws_from_a_domain_without_samplers(tmp_path: Path) -> None:
    """A domain with tasks but ``methods: []`` has no per-job tables: each figure gets the empty table ``io.gather``
    makes (its key columns only) and draws a placeholder instead of failing on a column that only samples hold."""
    from pipeline_lib.io import TABLE_KEYS, gather

    def empty(name: str) -> pd.DataFrame:
        return gather([], TABLE_KEYS[name])

    palette = plots.method_palette([])
    plots.top_molecules(empty("samples"), "mol", "t", tmp_path / "mol.png")
    targets = pd.DataFrame({"env": "g", "task": "t", "x0": [0, 1], "x1": [1, 1], "target_prob": [0.5, 0.5]})
    plots.heatmaps(empty("samples"), targets, "g", tmp_path / "heat.png")  # targets: every task has its own
    plots.curves_figure(empty("curves"), "g", plots.SEARCH_ROWS, palette, tmp_path / "search.png")
    plots.pretrain_success(empty("pretrain"), "g", tmp_path / "success.png")
    plots.pretrain_lengths(empty("pretrain_bands"), "g", tmp_path / "lengths.png")
    plots.descriptor_success(empty("outcomes"), "g", tmp_path / "descriptor.png")
    assert all((tmp_path / f"{name}.png").stat().st_size > 0
               for name in ("mol", "heat", "search", "success", "lengths", "descriptor"))
