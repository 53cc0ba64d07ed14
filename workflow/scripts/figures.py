"""One figure of one domain, from the collected parquet tables only (rerunning this never retrains anything);
which figure is the rule's name (workflow/rules/report.smk)."""
from pipeline_lib.io import read_parquet
from pipeline_lib.logs import logged
from pipeline_lib.report import plots

with logged(snakemake.log[0]):
    i, out, w = snakemake.input, snakemake.output[0], snakemake.wildcards
    rule = snakemake.rule
    if rule == "figure_pretrain_success":
        plots.pretrain_success(read_parquet(i.pretrain), w.env, out)
    elif rule == "figure_descriptor":
        plots.descriptor_success(read_parquet(i.outcomes), w.env, out)
    elif rule == "figure_pretrain_lengths":
        plots.pretrain_lengths(read_parquet(i.bands), w.env, out)
    elif rule in ("figure_search", "figure_l1"):
        palette = plots.method_palette(snakemake.params.methods)
        rows = plots.SEARCH_ROWS if rule == "figure_search" else plots.L1_ROWS
        plots.curves_figure(read_parquet(i.curves), w.env, rows, palette, out)
    elif rule == "figure_heatmaps":
        plots.heatmaps(read_parquet(i.samples), read_parquet(i.targets), w.env, out)
    elif rule == "figure_molecules":
        plots.top_molecules(read_parquet(i.samples), w.env, w.task, out)
    else:
        raise ValueError(f"figures.py: no figure for rule {rule!r}")
