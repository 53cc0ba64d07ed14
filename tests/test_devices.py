"""What runs on the training device must not mix in CPU constants: CUDA is not here to test on, so the environments'
hot paths and the tensor rewards run on PyTorch's ``meta`` device, where any CPU tensor met on the way raises
("... is not on the expected device"), as it would on CUDA."""
from __future__ import annotations

import pytest
import torch

from pipeline_lib.domains import make_env
from pipeline_lib.domains.hypergrid import rewards as grid_rewards
from pipeline_lib.domains.subset import rewards as set_rewards
from pipeline_lib.ocgfn.gcrl import Replay

META = torch.device("meta")
DOMAINS = [("hypergrid", {"ndim": 2, "side": 5}), ("subset", {"n": 5}),
           ("sequence", {"alphabet": "dna", "length": 4, "mode": "append"}),
           ("sequence", {"alphabet": "bits2", "length": 4, "min_length": 2, "mode": "prepend_append"})]


@pytest.mark.parametrize(("domain", "params"), DOMAINS, ids=lambda v: v if isinstance(v, str) else "")
def test_an_environment_on_another_device_stays_there(domain: str, params: dict) -> None:
    env = make_env(domain, params, META)
    s = env.initial_states(4)
    actions = torch.zeros(4, dtype=torch.long, device=META)
    nxt = env.step(s, actions)
    outputs = [env.forward_mask(s), env.backward_mask(nxt), nxt, env.featurize(nxt), env.is_initial(nxt),
               env.can_reach(s, nxt), env.same(s, nxt), env.level(nxt), env.backward_action(s, actions)]
    if hasattr(env, "pair_features"):
        outputs.append(env.pair_features(s, nxt))
    assert all(out.device == META for out in outputs)


def test_tensor_rewards_compute_on_the_objects_device() -> None:
    grid = make_env("hypergrid", {"ndim": 2, "side": 5}, META).initial_states(3)
    for name, fn in grid_rewards.REWARDS.items():
        assert fn(grid, 5).device == META, name
    sets = make_env("subset", {"n": 5}, META).initial_states(3)
    for name, fn in set_rewards.REWARDS.items():
        assert fn(sets).device == META, name


def test_a_resumed_replay_goes_back_to_its_device() -> None:
    """Checkpoints load on the CPU; the GCRL replay must put what it loads back on the training device."""
    replay = Replay(8, META)
    replay.load_state_dict({"size": 2, "pos": 2, "data": {k: torch.zeros(2, 3) for k in Replay.KEYS}})
    assert all(v.device == META for v in replay.data.values())


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: these run where one is")


def test_cuda_without_a_gpu_is_named() -> None:
    from pipeline_lib.runtime import select_device

    if torch.cuda.is_available():
        n = torch.cuda.device_count()  # a GPU number past those this process sees (one per job on a scheduler)
        with pytest.raises(RuntimeError, match=rf"device: 'cuda:{n}', but torch sees {n} CUDA device\(s\)"):
            select_device(f"cuda:{n}")
    else:
        with pytest.raises(RuntimeError, match="'cuda:1' requested but torch sees no CUDA device"):
            select_device("cuda:1")
    assert select_device("cpu") == torch.device("cpu")


@CUDA
@pytest.mark.slow
def test_the_test_config_runs_on_cuda_and_reruns_a_forced_job(tmp_path) -> None:
    """The whole DAG of config/test.yaml on the GPU (every method of the grid, the figures, the summary), then a
    forced pre-training job and the adaptations that read it again: what the meta-device tests above cannot reach
    (generators, CPU tables indexed from the device, checkpoints written and read beside the GPU)."""
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "results"
    run = [sys.executable, "-m", "snakemake", "all", "--cores", "2", "--configfile", "config/test.yaml",
           "--config", f"results={out}", "device=cuda"]
    result = subprocess.run(run, cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    assert pd.read_parquet(out / "environment.parquet")["gpu"].iloc[0] != ""
    curves = pd.read_parquet(out / "tables/finetune_curves.parquet")
    assert curves["l1"].notna().any() and (curves["unique_reward_calls"] >= 0).all()
    model = out / "grid6/pretrain/full/seed0/model.pt"
    result = subprocess.run([*run, "--forcerun", str(model)], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
