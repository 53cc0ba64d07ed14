"""The summary page as a reader sees it: opened in headless Chromium (Debian's `chromium`; `.ci/run` installs
it as it installs slurm-wlm, and this test is skipped with a message where there is none), every figure must
load, no script may fail, and the screenshot must show a page as long as its content, not a blank one."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline_lib.report import page, plots

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files"]


def _page(tmp_path: Path) -> Path:
    """A summary page of two domains with their figures, from tables shaped like the collected ones."""
    rows = []
    for env, tasks in (("grid", ["corner", "ring"]), ("seq", ["t1"])):
        for task in tasks:
            for seed in (0, 1):
                for method, kind, pre in (("exact", "exact", "full"), ("exact_control", "exact", "control"),
                                          ("scratch", "scratch", ""), ("mcmc", "mcmc", "")):
                    for step in ((0,) if kind == "exact" else (0, 10, 100)):
                        calls = 4096 if kind == "exact" else 20 * step + 1
                        rows.append({"env": env, "task": task, "method": method, "kind": kind, "pretrained": pre,
                                     "seed": seed, "step": step, "reward_calls": calls, "unique_reward_calls": calls,
                                     "seconds": 0.2 * step, "modes_found": step / 10 + seed, "top100_reward": 0.5,
                                     "top100_diversity": 1.0, "l1": 1 / (1 + step) if env == "grid" else np.nan})
    curves = pd.DataFrame(rows)
    pretrain = pd.DataFrame({"env": ["grid", "seq"], "variant": "full", "seed": 0, "step": 100,
                             "success_sample": [0.97, 0.99], "success_greedy": [1.0, 1.0]})
    final = curves.loc[curves.groupby(["env", "task", "method", "seed"])["step"].idxmax()]
    evaluation = final[["env", "task", "method", "seed", "l1", "top100_reward"]]
    palette = plots.method_palette(["exact", "exact_control", "scratch", "mcmc"])
    figures = []
    for kind, env, rows_ in (("l1", "grid", plots.L1_ROWS), ("search", "grid", plots.SEARCH_ROWS),
                             ("search", "seq", plots.SEARCH_ROWS)):
        path = tmp_path / f"{env}_{kind}.png"
        plots.curves_figure(curves, env, rows_, palette, path)
        figures.append((kind, env, "", str(path)))
    out = tmp_path / "summary.html"
    page.summary_page(pretrain, evaluation, curves, pd.DataFrame({"torch": ["2"], "device": ["cpu"]}), figures,
                      str(out), str(tmp_path / "summary.md"), budgets={"grid": None, "seq": 1000},
                      headlines={"grid": "l1", "seq": "search"})
    return out


def test_summary_page_renders_in_a_browser(tmp_path: Path) -> None:
    html = _page(tmp_path)
    dom = subprocess.run([BROWSER, *FLAGS, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, f"no page rendered: {dom[:300]!r}"
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    # each domain's headline figure (2) and all three figures, every one decoded
    assert attrs.get("images") == "5" and attrs.get("broken-images") == "0", attrs
    assert "js-errors" not in attrs, attrs
    height = int(attrs["height"])
    assert height > 2000  # verdict, three figures and the tables: a long page, not a clipped one
    shot = tmp_path / "shot.png"
    subprocess.run([BROWSER, *FLAGS, f"--window-size=1200,{height}", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3].mean(-1) * 255  # grey levels 0..255
    assert pixels.shape[0] == height and pixels.std() > 10  # not a blank page
    inked = np.nonzero((pixels < 200).any(axis=1))[0]
    assert inked.min() < 100 and inked.max() > 0.8 * height  # content from the top to near the bottom
