"""Random search, the method added by following the README's "Extending" steps: it runs on any domain
through the registry and counts each distinct object once."""
from __future__ import annotations

import math

import torch

from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.methods import method_class
from pipeline_lib.tasks.task import Task


def _run(env, spec: dict, steps: int = 6):
    cls = method_class("random")
    method = cls(Task(env, spec), cls.Settings(steps=steps, batch_size=32, eval_every=3), 0, torch.device("cpu"))
    return method, method.run()


def test_random_search_on_a_grid_counts_distinct_calls_and_samples_uniformly() -> None:
    env = HyperGrid(ndim=2, side=4)
    method, curve = _run(env, {"reward": "corner"})
    last = curve.iloc[-1]
    assert last["reward_calls"] == 6 * 32 and last["unique_reward_calls"] <= env.n_states
    assert last["unique_reward_calls"] == len(set(method.oracle.keys(torch.cat(method.oracle._objects))))
    assert last["modes_found"] > 0 and math.isnan(last["l1"])  # no policy table: only empirical L1
    x = method.sample(16000, torch.Generator().manual_seed(1))
    counts = torch.bincount(env.index(x), minlength=env.n_states).float() / len(x)
    assert (counts - 1 / env.n_states).abs().max() < 0.02


def test_random_search_on_sequences_with_a_plug_in_reward_is_deterministic(tmp_path) -> None:
    plugin = tmp_path / "gc.py"
    plugin.write_text("def gc(seqs, target=0.5):\n"
                      "    return [1e-3 + 1 - abs(s.count('G') + s.count('C') - target * len(s)) / len(s)\n"
                      "            for s in seqs]\n")
    env = Sequence(alphabet="dna", length=5, min_length=2)
    spec = {"reward": f"{plugin}:gc", "modes": {"kind": "threshold", "threshold": 0.99, "min_distance": 2}}
    (_, a), (_, b) = _run(env, spec), _run(env, spec)
    assert a.drop(columns="seconds").equals(b.drop(columns="seconds"))
    assert a["reward_calls"].iloc[-1] == 6 * 32 and a["modes_found"].iloc[-1] > 0
    assert a["l1"].isna().all()  # enumerable, but random search holds no policy table
