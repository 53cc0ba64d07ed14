"""One figure of one domain, from its per-job parquet tables only (the rows of the collected tables it draws;
rerunning this never retrains anything); which figure is the rule's name (workflow/rules/report.smk)."""
import pandas as pd

from pipeline_lib.io import TABLE_KEYS, gather
from pipeline_lib.logs import logged
from pipeline_lib.report import plots

with logged(snakemake.log[0]):
    i, out, w = snakemake.input, snakemake.output[0], snakemake.wildcards
    rule = snakemake.rule

    def table(name: str) -> pd.DataFrame:
        """The rule's input ``name``: its domain's per-job tables of the collected table ``name`` (TABLE_KEYS)."""
        return gather(list(getattr(i, name)), TABLE_KEYS[name])

    if rule == "figure_pretrain_success":
        plots.pretrain_success(table("pretrain"), w.env, out)
    elif rule == "figure_descriptor":
        plots.descriptor_success(table("outcomes"), w.env, out)
    elif rule == "figure_pretrain_lengths":
        plots.pretrain_lengths(table("pretrain_bands"), w.env, out)
    elif rule in ("figure_search", "figure_l1"):
        palette = plots.method_palette(snakemake.params.methods)
        rows = plots.SEARCH_ROWS if rule == "figure_search" else plots.L1_ROWS
        plots.curves_figure(table("curves"), w.env, rows, palette, out)
    elif rule == "figure_heatmaps":
        plots.heatmaps(table("samples"), table("targets"), w.env, out)
    elif rule == "figure_molecules":
        plots.top_molecules(table("samples"), w.env, w.task, out)
    else:
        raise ValueError(f"figures.py: no figure for rule {rule!r}")
