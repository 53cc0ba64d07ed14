"""The summary page (verdict, headline figures, tables, every figure) from the collected parquet tables."""
from pipeline_lib.io import read_parquet
from pipeline_lib.logs import logged
from pipeline_lib.report.page import summary_page

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    # params.figures lists (kind, env, task) in the order the rule's figure inputs were named (report.smk)
    figures = [(kind, env, task, path) for (kind, env, task), path in zip(p.figures, i.figures)]
    summary_page(read_parquet(i.pretrain), read_parquet(i.evaluation), read_parquet(i.curves),
                 read_parquet(i.environment[0]), figures, snakemake.output.html, snakemake.output.markdown,
                 budgets=p.budgets, per_task=p.per_task, headlines=p.headlines, windows=read_parquet(i.windows),
                 twins=p.twins, models=p.models)
