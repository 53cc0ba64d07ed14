"""One function per workflow stage; the Snakemake scripts are thin wrappers around these.

Each stage receives its resolved job (``plan.*_job``: the object the rule's params carry) and has one
body for every domain: what differs between domains is asked of the environment, the task and the
method. Every table written here is tidy (one row per observation) and carries the seed and the job
in its parquet metadata. Column meanings are documented once, in config/README.md.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline_lib import datasets, io, plan
from pipeline_lib.descriptors import make_descriptor
from pipeline_lib.domains import make_env
from pipeline_lib.methods import method_class
from pipeline_lib.ocgfn.descriptor import load_descriptor_model, model_entries, outcome_results, window_results
from pipeline_lib.ocgfn.gcrl import pretrainer
from pipeline_lib.ocgfn.pretrain import PretrainConfig
from pipeline_lib.runtime import configure_process, select_device
from pipeline_lib.tasks.metrics import empirical_l1, sample_summary
from pipeline_lib.tasks.task import TOP_K, Task

log = logging.getLogger(__name__)


def _env(job: dict[str, Any], device: torch.device):
    return make_env(job["env"]["domain"], job["env"]["params"], device)


def _label(df: pd.DataFrame, **columns: Any) -> pd.DataFrame:
    for col, value in reversed(list(columns.items())):
        df.insert(0, col, value)
    return df


def environment_info(requested_device: str, out: str) -> None:
    """Record the software and the device the pipeline will use (the setup rule)."""
    device = select_device(requested_device)
    rows = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "cuda_available": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
            "platform": platform.platform(), "pandas": pd.__version__}
    io.write_parquet(pd.DataFrame([rows]), out, device=requested_device)


def prepare_data(job: dict[str, Any]) -> None:
    """Fetch one data file a reward reads (``plan.data_job``), with its domain's own fetcher (cached)."""
    from pipeline_lib.domains import domain_rewards

    domain_rewards(job["domain"]).fetch(job["path"])
    log.info("%s ready", job["path"])


def prepare_dataset(job: dict[str, Any], out: str, resources: str) -> None:
    """An environment's data set (``plan.dataset_job``): the objects of its source that the environment can
    build, distinct, with the held-out split; how many fit is logged and kept in the file's metadata."""
    env = _env(job, torch.device("cpu"))
    table, counts = datasets.prepare(env, job["data"], resources)
    log.info("data set %s on %s: %s", job["data"]["source"], job["env"]["name"],
             ", ".join(f"{k} {v}" for k, v in counts.items()))
    io.write_parquet(table.assign(env=job["env"]["name"]), out, config=job, counts=counts)


def prepare_target(job: dict[str, Any], out: str) -> None:
    """What is known of a task before any search: where the space is enumerable, every object with its
    reward, its probability under R^exponent / Z and its mode flag (missing where modes are known only once
    found); else the listed modes, if any."""
    env = _env(job, torch.device("cpu"))
    task = Task(env, job["task"], job["resources"])
    modes = task.oracle.modes
    if task.enumerable:
        x = env.terminal_states()
        columns = {"reward": task.landscape.numpy(), "target_prob": task.target[env.index(x).cpu()].numpy()}
    else:
        x = modes.listed() if modes.listed() is not None else env.initial_states(0)
        columns = {"reward": torch.as_tensor(task.reward(x)).cpu().numpy() if len(x) else []}
    # modes known only once found (threshold, tanimoto: they depend on the order of discovery) cannot be flagged
    # in advance: is_mode is missing there, not False
    flags = (pd.array(modes.flags(x).numpy(), dtype="boolean") if modes.total is not None
             else pd.array([pd.NA] * len(x), dtype="boolean"))
    df = pd.DataFrame({"env": job["env"]["name"], "task": job["task"]["name"], **env.describe(x), **columns,
                       "is_mode": flags})
    task.oracle.save()
    io.write_parquet(df, out, config=job, modes_total=-1 if modes.total is None else modes.total)


def fingerprint(job: dict[str, Any], seed: int, *inputs: torch.Tensor | str | None) -> str:
    """A digest of what a training job's result depends on: the job (``plan.result_job``), the seed, and the bytes of
    its data tensors and input files (e.g. the pre-trained model). A checkpoint left by a killed run resumes only
    under the same digest, so a changed data set or a re-trained model never continues a stale run."""
    h = hashlib.sha256(json.dumps(plan.result_job(job), sort_keys=True, default=str).encode())
    h.update(str(seed).encode())
    for item in inputs:
        if isinstance(item, torch.Tensor):
            h.update(item.detach().cpu().contiguous().numpy().tobytes())
        elif item is not None:
            h.update(Path(item).read_bytes())
    return h.hexdigest()


def input_record(job: dict[str, Any], seed: int) -> dict[str, str]:
    """The job's values by key path (``settings.lr``) and the seed, as JSON: kept beside the digest in a checkpoint
    so that one set aside for other inputs can say which changed (``Trainer.run``)."""
    record = {"seed": str(seed)}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        else:
            record[path] = json.dumps(value, sort_keys=True, default=str)

    walk(plan.result_job(job), "")
    return record


def pretrain(job: dict[str, Any], seed: int, threads: int, model_out: str, metrics_out: str, bands_out: str) -> None:
    """Reward-free pre-training (``plan.pretrain_job``: the OC-GFN, or the GCRL baseline); resumes from
    ``model_out``.ckpt if a previous run was killed (left in place: the workflow removes it once it has recorded the
    job as done, ``io.drop_finished_checkpoints``). ``bands_out``: success and the explorer's, the goals' and
    the evaluation outcomes' shares per level band (moves from s0) at every evaluation."""
    with io.job_lock([model_out, metrics_out, bands_out]):
        _pretrain(job, seed, threads, model_out, metrics_out, bands_out)


def _pretrain(job: dict[str, Any], seed: int, threads: int, model_out: str, metrics_out: str, bands_out: str) -> None:
    configure_process(threads)
    device = select_device(job["device"])
    cfg = PretrainConfig(**job["settings"])
    env = _env(job, device)
    data = holdout = None
    if plan.uses_dataset(job):
        data, holdout = datasets.splits(env, plan.uses_dataset(job))
        log.info("data set %s: %d training objects, %s held out", job["data"]["source"], len(data),
                 len(holdout) if holdout is not None else 0)
    descriptor = make_descriptor(job["descriptor"], env) if "descriptor" in job else None
    trainer = pretrainer(env, cfg, seed, device, data, holdout, descriptor)
    trainer.inputs, trainer.input_record = fingerprint(job, seed, data, holdout), input_record(job, seed)
    checkpoint = Path(str(model_out) + ".ckpt")
    df = trainer.run(checkpoint)
    df.insert(0, "seed", seed)
    df.insert(0, "variant", job["variant"])
    df.insert(0, "env", job["env"]["name"])
    extra = model_entries(trainer, job["descriptor"]) if descriptor else {}
    io.save_checkpoint({"config": dataclasses.asdict(cfg), "env": job["env"],
                        "state_dict": trainer.model.state_dict(), **extra}, model_out)
    io.write_parquet(df, metrics_out, seed=seed, config=dataclasses.asdict(cfg), device=str(device))
    bands = _label(trainer.band_table(), env=job["env"]["name"], variant=job["variant"], seed=seed)
    io.write_parquet(bands, bands_out, seed=seed)


def finetune(job: dict[str, Any], seed: int, threads: int, pretrained: str | None, policy_out: str,
             curve_out: str, samples_out: str, metrics_out: str) -> None:
    """Adapt to one task with one method (``plan.finetune_job``), then evaluate the final sampler: its
    curve, its state, ``job['samples']`` objects drawn from it and their metrics (with the exact L1/KL of
    its policy where the space is enumerable). Resumes from ``policy_out``.ckpt (left in place, as in ``pretrain``)."""
    with io.job_lock([policy_out, curve_out, samples_out, metrics_out]):
        _finetune(job, seed, threads, pretrained, policy_out, curve_out, samples_out, metrics_out)


def _finetune(job: dict[str, Any], seed: int, threads: int, pretrained: str | None, policy_out: str,
              curve_out: str, samples_out: str, metrics_out: str) -> None:
    configure_process(threads)
    device = select_device(job["device"])
    env = _env(job, device)
    known = datasets.load(env, job["known"], datasets.TRAIN) if "known" in job else None
    task = Task(env, job["task"], job["resources"], known=known)
    task.check_every_object()  # uncounted; the final evaluation reads the same landscape
    cls = method_class(job["method"]["kind"])
    model = cls.load_source(job["method"]["pretrained"], pretrained, env, device,
                            job.get("descriptor")) if cls.uses_pretrained else None
    data = known if plan.uses_dataset(job) else None  # the same training split
    start = time.perf_counter()
    method = cls(task, cls.Settings(**job["settings"]), seed, device, model, data=data)
    # what a method computes before its first step (the exact conversion: all of it; the amortized
    # predictor: its tables) is wall-clock its curve's `seconds` must include, or equal-time comparisons lie
    method.elapsed += time.perf_counter() - start
    # the known objects (the data a method trains on is the same split): a resumed oracle's novel count must have
    # been made against the same split
    method.inputs = fingerprint(job, seed, known, pretrained if cls.uses_pretrained else None)
    method.input_record = input_record(job, seed)
    checkpoint = Path(str(policy_out) + ".ckpt")
    labels = {"env": job["env"]["name"], "task": job["task"]["name"], "method": job["method"]["name"],
              "kind": cls.kind,
              "pretrained": method.starts_from(job["method"].get("pretrained", "")) if cls.uses_pretrained else "",
              "seed": seed}
    curve = _label(method.run(checkpoint), **labels)
    task.oracle.save()
    state = {k: v for k, v in method.state_dict().items() if k != "oracle"}
    io.save_checkpoint({"kind": cls.kind, "method": job["method"]["name"], "state": state}, policy_out)
    io.write_parquet(curve, curve_out, seed=seed, config=job, device=str(device))

    exact = method.exact_metrics()  # before sampling: MCMC's chains move while they sample
    x = method.sample(job["samples"], torch.Generator(device).manual_seed(seed))
    reward = torch.as_tensor(task.reward(x), dtype=torch.float32).cpu()
    task.oracle.save()
    samples = pd.DataFrame({**labels, **env.describe(x), "reward": reward.numpy()}).drop(columns=["kind", "pretrained"])
    io.write_parquet(samples, samples_out, seed=seed)
    row = {**labels, **sample_summary(env, x, reward, task.new_modes(), TOP_K), **exact}
    row["modes_total"] = task.oracle.modes.total if task.oracle.modes.total is not None else -1
    row["l1_empirical"] = empirical_l1(env, x, task.target) if task.enumerable else float("nan")
    io.write_parquet(pd.DataFrame([row]).drop(columns="kind"), metrics_out, seed=seed)


def descriptor_outcomes(job: dict[str, Any], seed: int, model: str, outcomes_out: str, windows_out: str,
                        window_samples_out: str) -> None:
    """A descriptor variant's results (``plan.outcomes_job``): per outcome, the explorer's count, the learned
    log-count and the conditional success of ``samples`` draws; per window of ``descriptor.windows``, the
    window sampler's validity, uniqueness and fraction inside (``window_samples`` objects, no reward call),
    and those objects."""
    device = select_device(job["device"])
    env = _env(job, device)
    source = load_descriptor_model(model, env, device)
    labels = {"env": job["env"]["name"], "variant": job["variant"], "seed": seed}
    gen = torch.Generator(device).manual_seed(seed)
    table = outcome_results(source, job["samples"], gen)
    io.write_parquet(_label(table, **labels), outcomes_out, seed=seed, config=job)
    windows, objects = window_results(env, source, job["descriptor"].get("windows", {}), job["window_samples"], gen)
    io.write_parquet(_label(windows, **labels), windows_out, seed=seed, config=job)
    io.write_parquet(_label(objects, **labels), window_samples_out, seed=seed, config=job)
    log.info("descriptor outcomes of %s/%s: %d of %d outcomes met in pre-training, sampled success %.3f",
             job["env"]["name"], job["variant"], int(table["evaluated"].sum()), len(table),
             table["success_sample"].mean())

