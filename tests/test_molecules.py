"""Molecules: SELFIES decoding and canonical SMILES, the RDKit objectives on known drugs, reward plug-ins
and their validation errors, Tanimoto mode counting and the molecule sample metrics."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline_lib.config import ConfigError, check
from pipeline_lib.domains import make_env
from pipeline_lib.domains.molecule import chem
from pipeline_lib.domains.molecule.env import Molecule
from pipeline_lib.tasks.metrics import sample_summary
from pipeline_lib.tasks.modes import TanimotoModes
from pipeline_lib.tasks.oracle import Oracle
from pipeline_lib.tasks.rewards import make_reward
from pipeline_lib.tasks.task import Task

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"


@pytest.fixture(scope="module")
def env() -> Molecule:
    return Molecule(length=8)


# ------------------------------------------------------------------------------------ decoding
def test_canonical_smiles_of_selfies() -> None:
    assert chem.canonical("[C][C][O]") == "CCO"
    assert chem.canonical("[O][C][C]") == "CCO"  # another string, the same molecule
    assert chem.canonical("[C][=C][C][=C][C][=C][Ring1][=Branch1]") == "c1ccccc1"  # Kekulé ring -> aromatic
    assert chem.canonical("[Branch1]") == ""  # decodes to no atom
    assert chem.canonical(chem.sf.encoder(ASPIRIN)) == ASPIRIN


def test_env_masks_and_terminals(env: Molecule) -> None:
    """Stop is allowed from one token on; at the maximum length only stop remains."""
    s0 = env.initial_states(1)
    mask = env.forward_mask(s0)
    assert mask.shape == (1, len(chem.SELFIES_ALPHABET) + 1)
    assert mask[0, :-1].all() and not mask[0, -1]
    one = env.step(s0, torch.tensor([0]))
    assert env.forward_mask(one)[0].all()
    full = env.encode(["[C]" * 8])
    assert env.forward_mask(full)[0].tolist() == [False] * env.vocab + [True]
    assert env.decode(full) == ["[C]" * 8] and env.smiles(full) == ["CCCCCCCC"]


def test_env_objects_are_canonical_molecules(env: Molecule) -> None:
    """Two token strings for ethanol are one object (same key), and rewards see canonical SMILES."""
    x = env.encode(["[C][C][O]", "[O][C][C]", "[C][C][C]"])
    keys = env.object_keys(x)
    assert keys[0] == keys[1] == "CCO" and keys[2] == "CCC"
    oracle = Oracle(lambda x: torch.ones(len(x)), TanimotoModes(env.smiles, 2.0), keys=env.object_keys,
                    diversity=env.diversity)
    oracle(x)
    assert oracle.calls == 3 and oracle.unique_calls == 2
    assert env.objects(x) == ["CCO", "CCO", "CCC"]
    have = env.capabilities()
    assert have["molecules"] is None and have["tree"] is None and have["enumerable"] is not None


def test_a_small_molecule_space_is_not_listed_as_its_strings() -> None:
    """Three tokens of three letters are 39 strings but 27 molecules ([C][C][O] and [O][C][C] are both CCO): the
    state tables over strings would count a molecule once per spelling, so no space of molecules is enumerable."""
    env = Molecule(length=3, alphabet=["[C]", "[N]", "[O]"])
    assert "not token strings" in env.capabilities()["enumerable"]
    assert env.objects(torch.tensor([[0, 0, 2], [2, 0, 0]])) == ["CCO", "CCO"]


def test_env_rejects_tokens_that_are_not_robust() -> None:
    with pytest.raises(ValueError, match="robust SELFIES"):
        Molecule(length=5, alphabet=["[C]", "[Xx]"])
    with pytest.raises(ValueError, match=r"params\.mode: unknown parameter of domain 'molecule'; expected some of "
                                         r"\['length', 'alphabet', 'min_length'\]"):
        make_env("molecule", {"length": 5, "mode": "prepend_append"})


def test_random_molecules_are_mostly_valid(env: Molecule) -> None:
    smiles = env.smiles(env.random_outcomes(500, torch.Generator().manual_seed(0)))
    assert sum(bool(s) for s in smiles) > 0.9 * len(smiles)
    assert all(chem.Chem.MolFromSmiles(s) is not None for s in smiles if s)


# ---------------------------------------------------------------------------------- objectives
def test_objectives_on_known_drugs() -> None:
    """QED of aspirin 0.550 (Bickerton et al. 2012 report 0.55); SA score of aspirin 1.58 (Ertl and
    Schuffenhauer 2009 scale: easy); Crippen logP 1.31 and TPSA 63.6 A^2 (RDKit descriptors)."""
    assert chem.qed([ASPIRIN])[0] == pytest.approx(0.5501, abs=1e-3)
    assert chem.sa_score(chem.molecule(ASPIRIN)) == pytest.approx(1.580, abs=1e-2)
    assert chem.sa([ASPIRIN])[0] == pytest.approx((10 - 1.580) / 9, abs=2e-3)
    assert chem._logp([ASPIRIN])[0] == pytest.approx(1.3101, abs=1e-3)
    assert chem._tpsa([ASPIRIN])[0] == pytest.approx(63.6, abs=0.1)
    assert chem.logp([ASPIRIN], low=1.0, high=2.0)[0] == 1.0
    assert chem.logp([ASPIRIN], low=2.3101, high=3.0, width=1.0)[0] == pytest.approx(np.exp(-0.5), abs=1e-3)
    assert chem.tpsa([ASPIRIN], low=70.0, high=90.0, width=6.4)[0] == pytest.approx(np.exp(-0.5), abs=1e-2)
    assert chem.similarity([ASPIRIN, PARACETAMOL], ["aspirin"]).tolist()[0] == 1.0
    sim = chem.similarity([PARACETAMOL], ["aspirin", "paracetamol"], aggregate="mean")[0]
    assert 0.5 < sim < 1.0
    both = chem.product([ASPIRIN], [{"name": "qed"}, {"name": "sa"}])[0]
    assert both == pytest.approx(chem.qed([ASPIRIN])[0] * chem.sa([ASPIRIN])[0])
    for fn in (chem.qed, chem.sa, chem.logp, chem.tpsa, chem.similarity):
        assert fn([""])[0] == 0.0  # the empty molecule scores nothing


def test_rewards_are_positive_with_floor(env: Molecule) -> None:
    x = env.encode(["[Branch1]", "[C][C][O]"])
    for name, params in [("qed", {}), ("sa", {}), ("logp", {}), ("tpsa", {}), ("similarity", {}),
                         ("product", {"components": [{"name": "qed"}, {"name": "similarity"}]})]:
        r = make_reward(name, params, env)(x)
        assert r.shape == (2,) and (r > 0).all() and r[0] == pytest.approx(1e-3)


@pytest.mark.parametrize("name,params,needle", [
    ("similarity", {"references": ["not_a_drug!"]}, "neither a known drug"),
    ("similarity", {"aggregate": "median"}, "aggregate"),
    ("product", {"components": [{"name": "banana"}]}, "component"),
    ("product", {}, "components"),
    ("qed", {"floor": 0.0}, "floor"),
    ("logp", {"center": 1.0}, "unknown parameter"),
    ("logp", {"low": "one"}, "low: expected float"),
    ("qed", {"floor": "abc"}, "floor: expected float"),
    ("logp", {"low": 3.0, "high": 1.0}, "low <= high"),
    ("tpsa", {"width": 0.0}, "width must be > 0"),
    ("logp", {"width": -1.0}, "width must be > 0"),
    ("similarity", {"references": []}, "at least one"),
    ("similarity", {"references": [""]}, "neither a known drug"),  # RDKit: a molecule without atoms
    ("similarity", {"references": ["CC O"]}, "neither a known drug"),  # RDKit: ethane named 'O'
    ("similarity", {"references": [False]}, "references: expected"),  # YAML 1.1 reads a bare NO as false
    ("product", {"components": [{"name": "similarity", "references": ["caffeine"]}]}, "unknown keys"),
])
def test_bad_objective_params(env: Molecule, name: str, params: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        make_reward(name, params, env)


def test_grid_reward_on_molecules_is_refused(env: Molecule) -> None:
    with pytest.raises(ValueError, match=r"reward 'corner' is not a reward of this domain; it takes \[.*'qed'.*\] "
                                         "or a plug-in"):
        make_reward("corner", {}, env)


# ------------------------------------------------------------------------------------ plug-ins
def molecule_config(config: dict, reward: str, params: dict | None = None) -> dict:
    """config/test.yaml (the ``test_config`` fixture) turned into one molecule environment and task."""
    config["envs"] = {"mol": {"domain": "molecule", "params": {"length": 8}, "tasks": ["t"], "variants": ["full"],
                              "methods": ["scratch"]}}
    config["tasks"] = {"t": {"reward": reward, "params": params or {},
                             "modes": {"kind": "tanimoto", "threshold": 0.5}}}
    config["pretrain"]["variants"] = {"full": {"ot": "reachable", "contrastive": True}}
    return config


PLUGINS = {
    "good": "def reward(smiles):\n    return [1.0 + len(s) for s in smiles]\n",
    "short": "def reward(smiles):\n    return [1.0] * (len(smiles) - 1)\n",
    "nan": "def reward(smiles):\n    return [float('nan')] * len(smiles)\n",
    "negative": "def reward(smiles):\n    return [-1.0] * len(smiles)\n",
    "inf": "import math\ndef reward(smiles):\n    return [math.inf] * len(smiles)\n",
    "raises": "def reward(smiles):\n    raise RuntimeError('model weights missing')\n",
    "broken": "import not_a_module_anywhere\ndef reward(smiles):\n    return smiles\n",
}


@pytest.mark.parametrize("kind,needle", [
    ("short", "shape"), ("nan", "NaN or infinite"), ("inf", "NaN or infinite"), ("negative", "<= 0"),
    ("raises", "model weights missing"), ("broken", "cannot import"),
])
def test_plugin_validation_errors(tmp_path: Path, test_config: dict, kind: str, needle: str) -> None:
    """A plug-in is tried on a few molecules before any job: each failure names the task and the cause."""
    path = tmp_path / f"{kind}.py"
    path.write_text(PLUGINS[kind])
    with pytest.raises(ConfigError, match="tasks.t.reward") as info:
        check(molecule_config(test_config, f"{path}:reward"))
    assert needle in str(info.value)


def test_plugin_receives_canonical_smiles(tmp_path: Path, test_config: dict, env: Molecule) -> None:
    path = tmp_path / "good.py"
    path.write_text("seen = []\n" + PLUGINS["good"].replace("    return", "    seen.extend(smiles)\n    return"))
    check(molecule_config(test_config, f"{path}:reward"))
    reward = make_reward(f"{path}:reward", {}, env)
    assert reward(env.encode(["[O][C][C]"])).tolist() == [4.0]  # "CCO": 1 + 3


def test_a_plugin_computes_each_distinct_molecule_once(tmp_path: Path, env: Molecule) -> None:
    """The final evaluation and MCMC re-read molecules the search already scored: a slow plug-in is not paid
    again, and two strings of one molecule are one call."""
    path, log = tmp_path / "counted.py", tmp_path / "calls.txt"
    path.write_text(f"def reward(smiles):\n    open({str(log)!r}, 'a').write(''.join(s + '\\n' for s in smiles))\n"
                    "    return [1.0 + len(s) for s in smiles]\n")
    reward = make_reward(f"{path}:reward", {}, env)
    first = reward(env.encode(["[O][C][C]", "[C][C][O]", "[C]"]))  # "CCO" twice, then "C"
    again = reward(env.encode(["[C]", "[C][C][O]", "[N]"]))
    assert first.tolist() == [4.0, 4.0, 2.0] and again.tolist() == [2.0, 4.0, 2.0]
    assert log.read_text().split() == ["CCO", "C", "N"]


def test_the_config_check_tries_a_plugin_on_the_empty_molecule(tmp_path: Path, test_config: dict) -> None:
    """About 3% of random strings decode to no atom (''); a reward written for real molecules meets it first."""
    path = tmp_path / "weight.py"
    path.write_text("def reward(smiles):\n    return [0.0 if s == '' else 1.0 for s in smiles]\n")
    with pytest.raises(ConfigError, match="tasks.t.reward.*'smiles': ''"):
        check(molecule_config(test_config, f"{path}:reward"))


@pytest.mark.parametrize("min_length", [1, 3])
def test_the_empty_molecule_the_check_adds_is_an_object_of_the_space(min_length: int) -> None:
    space = Molecule(length=6, min_length=min_length)
    empty = space.check_outcomes()
    assert len(empty) == 1 and space.smiles(empty) == [""] and int(space.lengths(empty)[0]) == min_length


def test_tanimoto_modes_config_checks(test_config: dict) -> None:
    config = molecule_config(copy.deepcopy(test_config), "qed")
    config["tasks"]["t"]["modes"] = {"kind": "tanimoto"}
    with pytest.raises(ConfigError, match="tasks.t.modes.threshold"):
        check(config)
    config = molecule_config(test_config, "qed")
    config["envs"]["mol"]["domain"], config["envs"]["mol"]["params"] = "sequence", {"alphabet": "dna", "length": 4}
    config["tasks"]["t"]["reward"] = "tfbind"
    config["tasks"]["t"]["params"] = {"landscape": "ARX_REF_R1"}
    with pytest.raises(ConfigError, match=r"tasks\.t\.modes\.kind: 'tanimoto' needs the 'molecules' capability: "
                                          r"token strings are not molecules \(environment 'mol'\)"):
        check(config)


# -------------------------------------------------------------------------------------- modes
def test_tanimoto_modes_by_hand(env: Molecule) -> None:
    """Above the threshold and less than 0.7 similar to every earlier mode: benzoic acid and phenol are
    under 0.7 apart and both count; ethanol stays below the threshold; a repeat never counts twice."""
    smiles = ["OC(=O)c1ccccc1", "Oc1ccccc1", "CCO", "OC(=O)c1ccccc1"]
    lookup = dict(zip(range(len(smiles)), smiles))
    modes = TanimotoModes(lambda x: [lookup[int(i)] for i in x[:, 0]], threshold=0.5)
    assert chem.tanimoto(["OC(=O)c1ccccc1"], ["Oc1ccccc1"])[0, 0] < 0.7
    x = torch.arange(4)[:, None]
    modes.update(x, torch.tensor([0.9, 0.8, 0.1, 0.9]))
    assert modes.modes == ["OC(=O)c1ccccc1", "Oc1ccccc1"] and modes.count() == 2
    strict = TanimotoModes(lambda x: [lookup[int(i)] for i in x[:, 0]], threshold=0.5, max_similarity=0.2)
    strict.update(x, torch.tensor([0.9, 0.8, 0.1, 0.9]))
    assert strict.count() == 1  # phenol is too similar to benzoic acid at 0.2
    restored = TanimotoModes(strict.smiles, 0.5)
    restored.load_state_dict(modes.state_dict())
    assert restored.count() == 2


def test_molecule_sample_summary(env: Molecule) -> None:
    """Unique fraction over molecules, internal diversity, validity and Bemis-Murcko scaffolds."""
    benzene = "[C][=C][C][=C][C][=C][Ring1][=Branch1]"
    x = env.encode(["[C][C][O]", "[O][C][C]", benzene, "[Branch1]"])
    r = torch.tensor([0.2, 0.2, 0.9, 0.001])
    summary = sample_summary(env, x, r, TanimotoModes(env.smiles, 0.5), top_k=2)
    assert summary["unique_fraction"] == 0.75 and summary["validity"] == 0.75
    assert summary["modes_in_samples"] == 1 and summary["top2_reward"] == pytest.approx(0.55)
    assert summary["top2_diversity"] == pytest.approx(1.0)  # ethanol and benzene share no Morgan bit
    assert summary["top100_scaffolds"] == 2  # benzene's ring and the acyclic scaffold of ethanol
    assert chem.internal_diversity(["CCO", "CCO"]) == 0.0


def test_molecule_task_through_oracle(env: Molecule) -> None:
    """The oracle counts a molecule once whatever string reached it and tracks Tanimoto modes."""
    reward = make_reward("qed", {}, env)
    task = Task(env, {"reward": "qed", "params": {}, "exponent": 2.0,  # QED: ethanol 0.41, benzene 0.44
                      "modes": {"kind": "tanimoto", "threshold": 0.42}})
    assert isinstance(task.oracle.modes, TanimotoModes) and not task.enumerable
    x = env.encode(["[C][C][O]", "[O][C][C]", "[C][=C][C][=C][C][=C][Ring1][=Branch1]"])
    log_r = task.log_reward(x)
    assert torch.allclose(log_r, 2.0 * reward(x).log())
    row = task.oracle.row()
    assert row["reward_calls"] == 3 and row["unique_reward_calls"] == 2 and row["modes_found"] == 1
    assert task.oracle.modes.modes == ["c1ccccc1"]
