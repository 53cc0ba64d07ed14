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
