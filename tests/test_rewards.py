"""Built-in rewards at hand-picked cells, plug-ins by file and dotted path, validation, and a grid task's
reward behind its oracle (call counting, the exact landscape and target, relative modes)."""
from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest
import torch

from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.hypergrid.rewards import REWARDS, corner, peaks, ring
from pipeline_lib.tasks.modes import ExactModes, make_modes
from pipeline_lib.tasks.rewards import Reward, load_callable, make_reward, validate_reward
from pipeline_lib.tasks.task import Task


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def test_registry_names() -> None:
    assert set(REWARDS) == {"corner", "ring", "peaks"}
    assert HyperGrid(ndim=2, side=4).reward_names() == ["corner", "peaks", "ring"]


def test_corner_hand_values_side16() -> None:
    # u = x / 15, d = |u - 0.5|; band1: all d > 0.25, band2: all 0.3 < d < 0.4
    # x = 2 (d = 0.367) and 13: both bands; x = 0, 1, 15 (d = 0.5, 0.433, 0.5): band1 only;
    # x = 4, 8, 11 (d = 0.233, 0.033, 0.233): none
    r0, r1, r2 = 0.1, 0.5, 2.0
    cells = t([[2, 2], [13, 2], [2, 13], [8, 8], [0, 0], [15, 1], [2, 8], [8, 2], [1, 4], [0, 11], [0, 2]])
    expected = [r0 + r1 + r2, r0 + r1 + r2, r0 + r1 + r2, r0, r0 + r1, r0 + r1, r0, r0, r0, r0, r0 + r1]
    got = corner(cells, side=16, r0=r0, r1=r1, r2=r2)
    assert got.shape == (11,)
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6)


def test_corner_counts_side16() -> None:
    env = HyperGrid(ndim=2, side=16)
    r = corner(env.all_states(), side=16)
    # band2 cells per axis: x in {2, 13} (d = 0.367); x = 3 and 12 sit on d = 0.3 exactly, outside in
    # float arithmetic; band1 per axis: x in {0..3, 12..15}
    assert int((r > 2.5).sum()) == 4
    assert int((r > 0.5).sum()) == 64
    assert r.min().item() == pytest.approx(0.1)


def test_ring_positive_and_peaks_on_the_ring() -> None:
    side = 21  # u = x / 20 on a grid with 0.05 spacing, so radius 0.35 is hit exactly at (17, 10)
    cells = t([[17, 10], [10, 3], [10, 10], [0, 0]])
    r = ring(cells, side=side, r0=0.01, radius=0.35, width=0.05)
    assert r[0].item() == pytest.approx(1.01, abs=1e-5) and r[1].item() == pytest.approx(1.01, abs=1e-5)
    assert r[2].item() == pytest.approx(0.01 + math.exp(-0.5 * 49), rel=1e-5)  # the centre: dist 0
    assert r[3].item() == pytest.approx(0.01, abs=1e-6)  # corner: dist 0.707, far off the ridge
    full = ring(HyperGrid(ndim=2, side=side).all_states(), side=side, r0=0.01, radius=0.35, width=0.05)
    assert (full > 0).all() and full.max().item() == pytest.approx(1.01, abs=1e-5)


def test_peaks_default_centres() -> None:
    side = 11  # u = x / 10: the default centres (0.2, 0.2), (0.8, 0.8), (0.2, 0.8) are cells
    env = HyperGrid(ndim=2, side=side)
    r = peaks(env.all_states(), side=side, r0=0.01, width=0.06)
    assert (r > 0).all()
    for cell in ([2, 2], [8, 8], [2, 8]):
        value = r[env.index(t([cell]))].item()
        assert value == pytest.approx(1.01, abs=1e-4)
        assert value == pytest.approx(r.max().item())
    # a cell far from every centre is at the floor r0
    assert r[env.index(t([[5, 0]]))].item() == pytest.approx(0.01, abs=1e-4)
    # on a line, three separate peaks of the same height (not two stacked at 0.2)
    line = peaks(torch.arange(side)[:, None], side=side)
    assert [round(v, 3) for v in line[[2, 5, 8]].tolist()] == [1.01, 1.01, 1.01] and line.max() < 1.011


def test_a_grid_too_large_to_list_is_not_enumerable(test_config: dict) -> None:
    """Its exact target would allocate every cell (5000^3: a terabyte): a method or modes kind that lists the space
    is refused before any job, and no heatmap of a target is planned."""
    from pipeline_lib.config import ConfigError, check

    big = HyperGrid(ndim=3, side=5000)
    assert big.capabilities()["enumerable"].startswith("5000^3 cells are more than") and big.figure_kinds == ()
    assert HyperGrid(ndim=2, side=2048).capabilities()["enumerable"] is None  # 2^22 cells: still listed
    test_config["envs"]["grid6"].update(params={"ndim": 3, "side": 5000}, methods=["scratch"])
    with pytest.raises(ConfigError, match="needs the 'enumerable' capability: 5000\\^3 cells"):
        check(test_config)


def test_peaks_custom_centres_and_heights() -> None:
    r = peaks(t([[0, 0], [4, 4], [2, 2]]), side=5, r0=0.5, width=0.1, centers=[[0.0, 0.0], [1.0, 1.0]],
              heights=[1.0, 3.0])
    assert r[0].item() == pytest.approx(1.5, abs=1e-6)
    assert r[1].item() == pytest.approx(3.5, abs=1e-6)
    assert r[2].item() == pytest.approx(0.5 + 4 * math.exp(-0.5 * 0.5 / 0.01), abs=1e-6)


def test_peaks_bad_centres_and_heights() -> None:
    with pytest.raises(ValueError, match="centers must be a list of 2-dimensional"):
        peaks(t([[0, 0]]), side=5, centers=[[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match="heights must have one value per center"):
        peaks(t([[0, 0]]), side=5, centers=[[0.1, 0.2]], heights=[1.0, 2.0])


def test_make_reward_registered_binds_side_and_params() -> None:
    env = HyperGrid(ndim=2, side=16)
    fn = make_reward("corner", {"r0": 0.3}, env)
    assert isinstance(fn, Reward) and fn.caches == []
    assert fn(t([[8, 8], [2, 2]])).tolist() == pytest.approx([0.3, 2.8])
    fn.save()  # nothing to persist: a no-op


def test_make_reward_plugin_file_path(tmp_path: Path) -> None:
    path = tmp_path / "my_reward.py"
    path.write_text("import torch\n\ndef fn(x, scale=1.0):\n    return scale * (1.0 + x.sum(-1).float())\n")
    env = HyperGrid(ndim=2, side=4)
    reward = make_reward(f"{path}:fn", {"scale": 2.0}, env)
    assert reward(t([[0, 0], [1, 2], [3, 3]])).tolist() == [2.0, 8.0, 14.0]


def test_a_plugin_computes_each_cell_once_and_names_a_wrong_length(tmp_path: Path) -> None:
    """On a space that can be listed the values sit in a table over the cells: a batch's repeats and the cells an
    earlier batch computed are not asked again; a wrong number of values is named against what the plug-in got."""
    path, log = tmp_path / "logged.py", tmp_path / "cells.txt"
    path.write_text(f"def fn(x, extra=0):\n    open({str(log)!r}, 'a').write(repr(x.tolist()) + '\\n')\n"
                    "    return [1.0 + float(v) for v in x.sum(-1)] + [1.0] * extra\n")
    env = HyperGrid(ndim=2, side=4)
    reward = make_reward(f"{path}:fn", {}, env)
    assert reward(t([[0, 0], [1, 2], [0, 0]])).tolist() == [1.0, 4.0, 1.0]
    assert reward(t([[1, 2], [3, 3]])).tolist() == [4.0, 7.0]
    assert reward(t([[0, 0]])[:0]).shape == (0,)
    assert log.read_text().split("\n")[:-1] == ["[[0, 0], [1, 2]]", "[[3, 3]]"]
    with pytest.raises(ValueError, match=r"returned shape \(3,\) for 2 distinct objects; expected \(2,\)"):
        make_reward(f"{path}:fn", {"extra": 1}, env)(t([[0, 1], [0, 1], [2, 0]]))


def test_a_plugin_file_imports_a_helper_module_beside_it(tmp_path: Path) -> None:
    helper = f"helper_{uuid.uuid4().hex}"
    (tmp_path / f"{helper}.py").write_text("def bonus(x):\n    return 1.0 + x.sum(-1).float()\n")
    (tmp_path / "uses_helper.py").write_text(f"from {helper} import bonus\n\ndef fn(x):\n    return bonus(x)\n")
    reward = make_reward(f"{tmp_path / 'uses_helper.py'}:fn", {}, HyperGrid(ndim=2, side=4))
    assert reward(t([[0, 0], [1, 2]])).tolist() == [1.0, 4.0]


@pytest.mark.parametrize("source, params, expected", [
    ("def fn(side):\n    return side\n", {"side": 4}, "it takes 'side' first, a key of its params too; give it a "
                                                        "first parameter for the objects, e.g. def fn(objects, side)"),
    ("def fn(*, side=1):\n    return side\n", {}, "it takes no positional argument (its first is side=1)"),
    ("def fn():\n    return 1\n", {}, "it takes no argument"),
    ("def fn(x, y, side=1):\n    return x\n", {}, "reward 'PATH:fn' (called as function(objects, **params)) needs "
                                                   "['y']"),
])
def test_a_plugin_signature_is_named_with_how_plugins_are_called(tmp_path: Path, source: str, params: dict,
                                                                  expected: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(ValueError) as info:
        make_reward(f"{path}:fn", params, HyperGrid(ndim=2, side=4))
    assert expected.replace("PATH", str(path)) in str(info.value), str(info.value)


def test_make_reward_plugin_dotted_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"plugin_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text("def double_plus_one(x):\n    return 1.0 + 2.0 * x[:, 0].float()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = HyperGrid(ndim=2, side=4)
    reward = make_reward(f"{module}:double_plus_one", {}, env)
    assert reward(t([[0, 3], [2, 1]])).tolist() == [1.0, 5.0]


def test_make_reward_dotted_path_to_library_function() -> None:
    # a plug-in gets only its params (no side injected), so the same function must be given side explicitly
    env = HyperGrid(ndim=2, side=16)
    cells = env.all_states()
    plugin = make_reward("pipeline_lib.domains.hypergrid.rewards:corner", {"side": 16}, env)
    assert torch.equal(plugin(cells), make_reward("corner", {}, env)(cells))


def test_validate_reward_accepts_and_returns_float() -> None:
    values = validate_reward(lambda x: torch.ones(len(x), dtype=torch.float64) * 2, t([[0, 0], [1, 1]]), "two")
    assert values.dtype == torch.float32 and values.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("fn,problem", [
    (lambda x: torch.ones(len(x), 1), r"returned shape \(3, 1\); expected \(3,\)"),
    (lambda x: torch.ones(2), r"returned shape \(2,\); expected \(3,\)"),
    (lambda x: torch.tensor([1.0, float("nan"), 1.0]), "NaN or infinite"),
    (lambda x: torch.tensor([1.0, float("inf"), 1.0]), "NaN or infinite"),
    (lambda x: torch.tensor([1.0, -1.0, 1.0]), r"values <= 0 \(min -1\)"),
    (lambda x: torch.tensor([1.0, 0.0, 1.0]), "values <= 0"),
    (lambda x: torch.tensor([1.0, 1e-50, 1.0], dtype=torch.float64), r"returned 1e-50, which float32 .* holds as 0"),
    (lambda x: [1.0, 1e39, 1.0], r"returned 1e\+39, which float32 .* as 0 or inf: .* 1.2e-38 to 3.4e38"),
    (lambda x: 1 / 0, "failed on 3 test outcomes: ZeroDivisionError"),
    (lambda x: x.foo(), "failed on 3 test outcomes: AttributeError"),
])
def test_validate_reward_errors(fn, problem: str) -> None:
    with pytest.raises(ValueError, match=r"reward 'my_reward'.*" + problem):
        validate_reward(fn, t([[0, 0], [1, 1], [2, 2]]), "my_reward")


@pytest.mark.parametrize("value,shown", [("1e300", r"1e\+300"), ("1e-320", "1e-320")])
def test_a_plugin_value_beyond_float32_is_named_as_it_returned_it(tmp_path: Path, value: str, shown: str) -> None:
    """A plug-in's Python floats reach the check in float64: 1e300 is not reported as inf, nor 1e-320 as 0."""
    path = tmp_path / "far.py"
    path.write_text(f"def far(x):\n    return [{value}] * len(x)\n")
    with pytest.raises(ValueError, match=rf"returned {shown}, which float32 .* holds as 0 or inf"):
        validate_reward(make_reward(f"{path}:far", {}, HyperGrid(ndim=2, side=4)), t([[0, 0], [1, 1]]), "far")


def test_load_callable_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected a registered name.*'path/to/file.py:function'"):
        load_callable("no_colon_here")
    missing = tmp_path / "nope.py"
    with pytest.raises(ValueError, match=r"cannot import .*nope\.py.*no such file"):
        load_callable(f"{missing}:fn")
    path = tmp_path / "has_other.py"
    path.write_text("def other(x):\n    return x\nvalue = 3\n")
    with pytest.raises(ValueError, match=r"has no callable named 'fn'"):
        load_callable(f"{path}:fn")
    with pytest.raises(ValueError, match=r"has no callable named 'value'"):
        load_callable(f"{path}:value")
    with pytest.raises(ValueError, match=r"cannot import 'no_such_package_xyz\.mod': ModuleNotFoundError"):
        load_callable("no_such_package_xyz.mod:fn")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(ValueError, match="RuntimeError: boom at import"):
        load_callable(f"{broken}:fn")
    assert load_callable(f"{path}:other")(5) == 5


def test_make_reward_unknown_name_lists_the_domain_rewards() -> None:
    with pytest.raises(ValueError, match=r"reward 'cornerr' is not a reward of this domain; it takes "
                                         r"\['corner', 'peaks', 'ring'\] or a plug-in"):
        make_reward("cornerr", {}, HyperGrid(ndim=2, side=4))


def test_oracle_counts_and_round_trips() -> None:
    """The task's oracle counts every call and every distinct cell; its state restores both counts."""
    env = HyperGrid(ndim=2, side=4)
    task = Task(env, {"reward": "corner", "params": {}})
    out = task.oracle(t([[0, 0], [1, 1], [0, 0]]))
    assert out.shape == (3,)
    task.oracle(t([[1, 1], [3, 2]]))
    assert task.oracle.calls == 5 and task.oracle.unique_calls == 3
    state = task.oracle.state_dict()
    assert state["calls"] == 5 and env.index(state["objects"]).tolist() == [0, 5, 14]
    assert state["values"] == pytest.approx(corner(t([[0, 0], [1, 1], [3, 2]]), side=4).tolist())
    fresh = Task(env, {"reward": "corner", "params": {}})
    fresh.oracle.load_state_dict(state)
    assert fresh.oracle.calls == 5 and fresh.oracle.unique_calls == 3
    fresh.oracle(t([[3, 2], [3, 3]]))
    assert fresh.oracle.calls == 7 and fresh.oracle.unique_calls == 4
    assert task.oracle.calls == 5  # the original is untouched


def test_task_log_reward_is_counted_and_the_landscape_is_not() -> None:
    """log_reward = exponent * log R through the oracle; the landscape, the target R^exponent / Z and the
    uncounted log reward make no counted call."""
    env = HyperGrid(ndim=2, side=4)
    task = Task(env, {"reward": "corner", "params": {"r0": 0.2}, "exponent": 2.0})
    x = t([[0, 0], [1, 2]])
    assert torch.allclose(task.log_reward(x), 2.0 * corner(x, side=4, r0=0.2).log())
    assert task.oracle.calls == 2
    r = corner(env.all_states(), side=4, r0=0.2)
    assert torch.allclose(task.landscape, r)
    assert torch.allclose(task.target, r**2 / (r**2).sum()) and task.target.sum().item() == pytest.approx(1.0)
    assert torch.allclose(task.uncounted_log_reward(x), task.log_reward(x))
    assert task.enumerable and task.oracle.calls == 4  # only the two log_reward calls counted


@pytest.mark.parametrize("fraction,expected", [(0.5, [False, True, True, True]), (1.0, [False, False, True, False])])
def test_relative_modes(fraction: float, expected: list[bool]) -> None:
    """Modes of kind relative: cells whose reward is at least ``fraction`` times the maximum."""
    env = HyperGrid(ndim=1, side=4)
    landscape = torch.tensor([1.0, 2.5, 4.0, 3.0])
    modes = make_modes(env, {"kind": "relative", "fraction": fraction}, "corner", {}, lambda: landscape)
    assert isinstance(modes, ExactModes) and modes.mask.tolist() == expected
    assert modes.total == sum(expected)


def test_grid_task_default_modes_are_relative_half() -> None:
    """A grid task without a modes entry counts cells with R >= max R / 2 (corner on side 16: the 64 outer cells
    of band 1 have 0.6 < 2.6 / 2, so only the 4 band-2 cells are modes)."""
    env = HyperGrid(ndim=2, side=16)
    task = Task(env, {"reward": "corner", "params": {}})
    assert task.oracle.modes.total == 4 and task.oracle.calls == 0
    task.log_reward(t([[2, 2], [2, 13], [0, 0], [2, 2]]))
    assert task.oracle.row()["modes_found"] == 2


def test_a_zero_reward_met_after_the_config_check_stops_the_job_naming_the_object(tmp_path: Path) -> None:
    """The config check samples 16 objects; a reward that is 0 elsewhere used to be clamped to log R = -69 in
    silence. Now the task refuses it where it is first met: building the exact target on a listable space, or
    the oracle's first query of it on one too large to list."""
    from pipeline_lib.domains.sequence.env import Sequence

    plugin = tmp_path / f"zero_{uuid.uuid4().hex}.py"
    plugin.write_text("def r(seqs):\n    return [0.0 if s == 'TTT' else 1.0 for s in seqs]\n")
    with pytest.raises(ValueError,
                       match=r"task 'z': reward .* returned 0.0 \(<= 0\) for the object \{'sequence': 'TTT'\}"):
        Task(Sequence("dna", 3), {"name": "z", "reward": f"{plugin}:r"})  # default modes read the whole landscape
    plugin.write_text("def r(seqs):\n    return [0.0 if s == 'T' * 30 else 1.0 for s in seqs]\n")
    env = Sequence("dna", 30)  # 4^30 objects: no exact target, the oracle meets the zero
    task = Task(env, {"name": "z", "reward": f"{plugin}:r", "modes": {"kind": "threshold", "threshold": 0.5}})
    assert torch.equal(task.log_reward(env.random_outcomes(8, torch.Generator().manual_seed(0))), torch.zeros(8))
    with pytest.raises(ValueError, match=r"returned 0.0 \(<= 0\) for the object"):
        task.log_reward(torch.full((2, 30), 3))


def test_a_reward_returning_strings_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"reward 'r' returned str values \('a'\); expected one float per object"):
        validate_reward(lambda x: ["a"] * len(x), torch.zeros(3, 2), "r")
    plugin = tmp_path / f"words_{uuid.uuid4().hex}.py"  # a plug-in converts what it returns itself: same message
    plugin.write_text("def r(cells):\n    return ['high'] * len(cells)\n")
    env = HyperGrid(2, 4)
    reward = make_reward(f"{plugin}:r", {}, env)
    with pytest.raises(ValueError, match=r"returned str values \('high'\); expected one float per object"):
        validate_reward(reward, env.all_states(), "r")


def test_targets_leave_is_mode_missing_where_modes_are_known_only_once_found(test_config: dict,
                                                                                 tmp_path: Path) -> None:
    """Threshold modes depend on the order they are found in: the target table cannot flag them in advance, and
    says so with a missing value instead of a column of False; relative modes are flagged."""
    import pandas as pd

    from pipeline_lib import plan
    from pipeline_lib.stages import prepare_target

    test_config["tasks"]["corner"]["modes"] = {"kind": "threshold", "threshold": 1.0}
    prepare_target(plan.target_job(test_config, "grid6", "corner"), str(tmp_path / "t.parquet"))
    prepare_target(plan.target_job(test_config, "grid6", "peaks"), str(tmp_path / "p.parquet"))
    threshold, relative = pd.read_parquet(tmp_path / "t.parquet"), pd.read_parquet(tmp_path / "p.parquet")
    assert len(threshold) == 36 and threshold["is_mode"].isna().all()
    assert relative["is_mode"].notna().all() and relative["is_mode"].any()
