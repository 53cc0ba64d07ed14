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
