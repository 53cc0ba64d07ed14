"""The `snakemake --report` pages: every caption and the workflow description render without RST errors
(after Snakemake's Jinja pass), and every figure rule's caption exists and names its domain."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import docutils.core
import docutils.utils
import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = sorted((ROOT / "workflow/report").glob("*.rst"))


@pytest.mark.parametrize("path", CAPTIONS, ids=lambda p: p.name)
def test_caption_renders_without_errors(path: Path) -> None:
    stub = SimpleNamespace(wildcards=SimpleNamespace(env="grid16", task="corner"), config={}, params={})
    text = jinja2.Template(path.read_text(), undefined=jinja2.StrictUndefined).render(snakemake=stub)
    docutils.core.publish_doctree(text, settings_overrides={"halt_level": docutils.utils.Reporter.WARNING_LEVEL,
                                                            "report_level": docutils.utils.Reporter.WARNING_LEVEL})


def test_every_report_caption_exists() -> None:
    rules = (ROOT / "workflow/rules/report.smk").read_text()
    named = set(re.findall(r'caption="\.\./report/([a-z0-9_]+\.rst)"', rules))
    assert named and named <= {p.name for p in CAPTIONS}
    for name in ("search.rst", "l1.rst", "pretrain_success.rst"):
        assert "snakemake.wildcards.env" in (ROOT / "workflow/report" / name).read_text()
