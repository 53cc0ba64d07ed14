"""Every figure, from the collected parquet tables only (rerunning this never retrains anything)."""
from pipeline_lib.report import plots
from pipeline_lib.io import read_parquet
from pipeline_lib.stages import logged

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    curves = read_parquet(i.curves)
    plots.pretrain_success(read_parquet(i.pretrain), o.success)
    plots.adaptation_curves(curves, "step", o.l1_steps)
    plots.adaptation_curves(curves, "reward_calls", o.l1_calls)
    plots.adaptation_curves(curves, "unique_reward_calls", o.l1_unique)
    plots.adaptation_curves(curves, "reward_calls", o.modes, y="modes_found")
    plots.adaptation_curves(curves, "reward_calls", o.top_reward, y="top100_reward")
    plots.adaptation_curves(curves, "reward_calls", o.diversity, y="top100_diversity")
    samples, targets = read_parquet(i.samples), read_parquet(i.targets)
    # The rule's params hold the same lists its outputs were named from (common.smk), so they stay aligned.
    for env, path in zip(snakemake.params.heatmaps, o.heatmaps):
        plots.heatmaps(samples, targets, env, path)
    for (env, task), path in zip(snakemake.params.molecules, o.molecules):
        plots.top_molecules(samples, env, task, path)
