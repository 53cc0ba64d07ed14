"""Sequences over a token alphabet, built by appending (a tree) or by prepending or appending (a DAG).

States are long tensors [B, length]: token ids in [0, V) left-aligned, then the pad value V. The
empty sequence is s0. ``stop`` is valid once a sequence has at least ``min_length`` tokens
(``min_length = length`` gives fixed-length objects such as TF-Bind-8 8-mers). With append-only
generation each object has one trajectory, so reaching y is close to copying it; the
prepend-or-append variant gives every object of length l about 2^(l-1) trajectories, which is the
harder, DAG-shaped case of Malkin et al. (2022).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from pipeline_lib.core.env import (
    ANCESTORS,
    CAPABILITIES,
    COMPLETIONS,
    ENUMERABLE,
    LOCAL_MOVES,
    MOLECULES,
    NEIGHBOURS,
    TREE,
    DomainRewards,
    mean_pairwise,
    row_keys,
)
from pipeline_lib.domains.sequence.tokens import decode, encode

MODES = ("append", "prepend_append")
PAIRS = ("offsets", "summary")  # the forms of pair_features
ALPHABETS = {"dna": "ACGT", "rna": "ACGU", "protein": "ACDEFGHIKLMNPQRSTVWY"}


def resolve_alphabet(alphabet: list[str] | str) -> list[str]:
    """A token list from a list, a preset (dna, rna, protein, bits<k>: all k-bit words) or a string of letters."""
    if isinstance(alphabet, str):
        if alphabet in ALPHABETS:
            return list(ALPHABETS[alphabet])
        if alphabet.startswith("bits") and alphabet[4:].isdigit():
            k = int(alphabet[4:])
            return [format(i, f"0{k}b") for i in range(2**k)]
    return list(alphabet)


MAX_ENUMERABLE = 1 << 22  # states; above this, index() would need more than exact int64 tables


class Sequence(DomainRewards):
    """Batched sequence environment. Forward actions: append token v (v < V), prepend token v
    (V <= a < 2V, prepend_append only), stop (last). Backward actions: remove last (0), remove
    first (1, prepend_append only; length >= 2 so that a length-1 sequence has a single parent)."""

    rewards_module = "pipeline_lib.domains.sequence.rewards"
    descriptors_module = "pipeline_lib.domains.sequence.descriptors"  # built-in phi(x) (pipeline_lib.descriptors)

    def __init__(self, alphabet: list[str] | str, length: int, min_length: int | None = None, mode: str = "append",
                 device: torch.device | str = "cpu", pairs: str = "offsets") -> None:
        alphabet = resolve_alphabet(alphabet)
        if len(set(alphabet)) != len(alphabet):
            twice = sorted({a for a in alphabet if alphabet.count(a) > 1})
            raise ValueError(f"alphabet: expected each token once, got {twice} more than once in {alphabet}")
        if len(alphabet) < 2:
            raise ValueError(f"alphabet: expected at least 2 distinct tokens, got {alphabet}")
        if length < 1:
            raise ValueError(f"length: expected >= 1, got {length}")
        min_length = length if min_length is None else min_length
        if not 1 <= min_length <= length:
            raise ValueError(f"min_length: expected 1 <= min_length <= length={length}, got {min_length}")
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if pairs not in PAIRS:
            raise ValueError(f"pairs: expected one of {PAIRS}, got {pairs!r}")
        self.alphabet, self.length, self.min_length, self.mode, self.pairs = alphabet, length, min_length, mode, pairs
        self.device = torch.device(device)
        self.vocab = len(alphabet)
        self.pad = self.vocab
        self.prepend = mode == "prepend_append"
        self.n_actions = self.vocab * (2 if self.prepend else 1) + 1
        self.stop = self.n_actions - 1
        self.n_backward_actions = 2 if self.prepend else 1
        self.max_length = length + 1
        self.feature_dim = length * (self.vocab + 1) + length + 1
        # pair features (``pair_features``): per offset at which s may sit inside y (0 only when appending), the
        # match bit, y's token just left of the match (prepend only) and the one just right of it; 'summary'
        # keeps the match bits and counts those tokens over the matches, plus whether s = y
        self._offsets = torch.arange(length if self.prepend else 1, device=self.device)
        side_width = (self.vocab + 1) * (1 + int(self.prepend))  # one-hots of y's tokens beside a match
        self.pair_dim = (len(self._offsets) * (1 + side_width) if pairs == "offsets"
                         else len(self._offsets) + side_width + 1)
        counts = [self.vocab**k for k in range(length + 1)]
        self.enumerable = sum(counts) <= MAX_ENUMERABLE
        # every state has an exact int64 index even where the space is too large to list (RNA of 14 bases:
        # 3.6e8): what the outcomes' sub-DAGs (ancestors) need, not the dense tables
        self.indexable = sum(counts) < 2**62
        if self.enumerable:
            self.n_states = sum(counts)
        if self.indexable:
            self._offset = torch.tensor([sum(counts[:k]) for k in range(length + 1)], device=self.device)
            self._radix = self.vocab ** torch.arange(length - 1, -1, -1, device=self.device)
        self._positions = torch.arange(length, device=self.device)
        self._tokens = torch.arange(self.vocab + 1, device=self.device)
        self._sizes = torch.arange(length + 1, device=self.device)
        grow = ([0] * self.vocab) + ([1] * self.vocab if self.prepend else [])
        self._mask_low = torch.tensor(grow + [min_length], device=self.device)
        self._mask_high = torch.tensor([length] * len(grow) + [length + 1], device=self.device)
        # log of the objects below a state of each length (log_completions): sum over lengths j in [max(k,
        # min_length), length] of V^(j - k), made once (a policy reads it at every rollout step)
        k = torch.arange(length + 1, dtype=torch.float64)
        j = k[None, :].expand(len(k), -1)
        terms = torch.where((j >= k[:, None]) & (j >= min_length), (j - k[:, None]) * math.log(self.vocab),
                            torch.tensor(-math.inf, dtype=torch.float64))
        self._log_completions = torch.logsumexp(terms, 1).float().to(self.device)

    def lengths(self, states: torch.Tensor) -> torch.Tensor:
        return (states != self.pad).sum(-1)

    def initial_states(self, n: int) -> torch.Tensor:
        return torch.full((n, self.length), self.pad, dtype=torch.long, device=self.device)

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        # each action is valid on a range of lengths (append: n < L, prepend: 0 < n < L, stop: n >= min_length):
        # two comparisons against per-action bounds, no per-part tensors and cat in the rollout loop
        n = self.lengths(states)[:, None]
        return (n >= self._mask_low) & (n < self._mask_high)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        n = self.lengths(states)[:, None]
        return torch.cat([n > 0, n > 1], dim=1) if self.prepend else n > 0

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # write the token at position len(s) of appending rows: a comparison and a where, no boolean
        # indexing (which costs a nonzero per call in the rollout loop)
        app = actions < self.vocab
        slot = (self._positions == self.lengths(states)[:, None]) & app[:, None]
        out = torch.where(slot, actions[:, None], states)
        if self.prepend:
            pre = (actions >= self.vocab) & (actions < self.stop)
            shifted = torch.cat([(actions - self.vocab)[:, None], states[:, :-1]], dim=1)
            out = torch.where(pre[:, None], shifted, out)
        return out

    def backward_action(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return ((actions >= self.vocab) & (actions < self.stop)).long()

    def featurize(self, states: torch.Tensor) -> torch.Tensor:
        """One-hot tokens (pad included) and a one-hot of the length: the length says which position
        comes next, which an MLP would otherwise have to infer from the padding pattern."""
        tokens = (states[..., None] == self._tokens).flatten(-2)
        size = self.lengths(states)[..., None] == self._sizes
        return torch.cat([tokens, size], dim=-1).float()

    def pair_features(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        """Where s sits inside y (method.md 8): for each offset k at which s may start within y, whether
        y[k:k+n] = s, and y's tokens just left (prepend-or-append only) and just right of that match (pad:
        nothing there, so stop at y), one-hot and zero where s does not match at k. Appending has the one
        offset 0: "is s a prefix of y, and y's token at the cursor". This is what a relative-position
        attention head reads, which a flat MLP of two one-hots fails to learn once length x alphabet is
        large; one token per side keeps the width (1 + 2(V + 1)) L, not L^2 V.
        ``pairs: summary`` (long prepend-or-append sequences, e.g. AMP: 2150 inputs per pair otherwise) keeps the
        match bits, counts y's tokens either side over the matches and adds whether s = y: width L + 2(V + 1) + 1.
        It loses which token goes with which match, which matters only where s sits in y more than once."""
        b, length, pad = len(states), self.length, self.pad
        n = self.lengths(states)
        k = self._offsets
        hit = self._matches(states, outcomes)
        wide = torch.cat([outcomes, torch.full((b, length + 1), pad, dtype=outcomes.dtype, device=outcomes.device)], 1)
        tokens = [wide.gather(1, k[None, :] + n[:, None])[..., None]]
        if self.prepend:  # y[k - 1], pad at k = 0
            tokens.insert(0, torch.cat([wide[:, -1:], outcomes[:, :-1]], 1)[:, k, None])
        tokens = torch.cat(tokens, -1)  # [B, K, sides]
        if self.pairs == "summary":  # count each side's token over the matches: a scatter, no [B, K, V] one-hot
            sides = tokens.shape[-1]
            bins = (tokens + (self.vocab + 1) * torch.arange(sides, device=tokens.device)).flatten(1)
            counts = torch.zeros(b, sides * (self.vocab + 1), dtype=torch.float, device=states.device)
            counts.scatter_add_(1, bins, hit[..., None].expand(-1, -1, sides).flatten(1).float())
            return torch.cat([hit.float(), counts, self.same(states, outcomes)[:, None].float()], -1)
        onehot = (tokens[..., None] == self._tokens).flatten(-2) & hit[..., None]
        return torch.cat([hit[..., None], onehot], -1).flatten(1).float()

    def _matches(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        """Bool [B, K]: y[k:k+n] = s for each offset k of ``_offsets`` (the empty state matches everywhere).
        The windows y[k:k+L] are a strided view of y padded on the right, so the [B, K, L] work is two
        comparisons and a reduction; a token of s facing y's padding fails, so k + n <= |y| is implied for
        n > 0 and kept for the empty state."""
        n, m, k, pad = self.lengths(states), self.lengths(outcomes), self._offsets, self.pad
        wide = torch.cat([outcomes, outcomes.new_full((len(outcomes), len(k)), pad)], 1)
        windows = wide.unfold(1, self.length, 1)[:, :len(k)]  # windows[b, k, i] = y[k + i]
        s = states[:, None, :]
        return ((windows == s) | (s == pad)).all(-1) & (n[:, None] + k <= m[:, None])

    # --- the canonical completion order (capability 'completions'): appends first, then prepends, then stop ---
    def completion_mask(self, states: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """The forward moves of the canonical order, where ``phase`` counts the prepends made so far: appends
        close at the first prepend, so each way y holds a start (an offset) is exactly one trajectory."""
        mask = self.forward_mask(states)
        if self.prepend:
            mask[:, :self.vocab] &= (phase == 0)[:, None]
        return mask

    def completion_phase(self, phase: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The phase after ``actions``: one more prepend, or unchanged."""
        return phase + ((actions >= self.vocab) & (actions < self.stop)).long()

    def completion_paths(self, starts: torch.Tensor, outcomes: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every step of every canonical completion of ``starts[r]`` into ``outcomes[r]``: for each offset k
        where y[k:k+n] = s (one way; only k = 0 when appending), append y[k+n:], prepend y[:k]
        right to left, stop. From s0 the ways are the offsets k < |y| of the first token placed (s0 only
        appends). Returns, per step, the row r, the way k, the state, the action and the phase; a row whose
        outcome does not hold its start has no steps."""
        y, pad, vocab = outcomes, self.pad, self.vocab
        n, m = self.lengths(starts), self.lengths(y)
        hit = self._matches(starts, y) & ((n[:, None] > 0) | (self._offsets[None, :] < m[:, None]))  # [R, K]
        steps = torch.arange(self.length + 1, device=y.device)
        k = self._offsets[None, :, None]
        appends = (m[:, None, None] - k - n[:, None, None])  # [R, K, 1]: tokens right of the match
        valid = hit[..., None] & (steps[None, None, :] <= appends + k)  # the last step (j = appends + k) stops
        r, way, j = valid.nonzero(as_tuple=True)
        a_count, nr, mr = appends[r, way, 0], n[r], m[r]
        phase = (j - a_count).clamp(min=0)
        lo, hi = way - phase, torch.minimum(way + nr + j, mr)
        src = lo[:, None] + self._positions[None, :]
        beyond = self._positions[None, :] >= (hi - lo)[:, None]
        state = y[r[:, None], src.clamp(max=self.length - 1)].masked_fill(beyond, pad)
        wide = torch.cat([y, torch.full((len(y), 1), pad, dtype=y.dtype, device=y.device)], 1)
        action = torch.where(j < a_count, wide[r, hi.clamp(max=self.length)],
                             torch.where(j < a_count + way, vocab + wide[r, (lo - 1).clamp(min=0)],
                                         torch.full_like(j, self.stop)))
        return r, way, state, action, phase

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., 0] == self.pad

    def can_reach(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        """Append: ``states`` is a prefix of the outcome. Prepend-append: a contiguous substring."""
        if not self.prepend:
            return ((states == self.pad) | (states == outcomes)).all(-1)
        states, outcomes = torch.broadcast_tensors(states, outcomes)
        shape = states.shape[:-1]
        rows = max(1, (1 << 24) // (len(self._offsets) * self.length))  # bound the [rows, K, L] work in memory
        flat = zip(states.reshape(-1, self.length).split(rows), outcomes.reshape(-1, self.length).split(rows))
        return torch.cat([self._matches(s, y).any(-1) for s, y in flat]).view(shape)

    def same(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a == b).all(dim=-1)

    def random_outcomes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` terminal objects: a length uniform in [min_length, length], then uniform tokens."""
        dev = self.device
        size = torch.randint(self.min_length, self.length + 1, (n, 1), generator=generator, device=dev)
        tokens = torch.randint(0, self.vocab, (n, self.length), generator=generator, device=dev)
        return torch.where(torch.arange(self.length, device=dev) < size, tokens, self.pad)

    def terminal_states(self) -> torch.Tensor:
        """Every terminal object, in index order (enumerable spaces only)."""
        states = self.all_states()
        return states[self.lengths(states) >= self.min_length]

    def _require_enumerable(self) -> None:
        if not self.enumerable:
            raise ValueError(f"sequence space too large to enumerate ({self.vocab}^{self.length} objects)")

    def all_states(self) -> torch.Tensor:
        self._require_enumerable()
        blocks = [self.initial_states(1)]
        for k in range(1, self.length + 1):
            tokens = torch.cartesian_prod(*[torch.arange(self.vocab, device=self.device)] * k).reshape(-1, k)
            pad = torch.full((len(tokens), self.length - k), self.pad, dtype=torch.long, device=self.device)
            blocks.append(torch.cat([tokens, pad], dim=1))
        return torch.cat(blocks)

    def index(self, states: torch.Tensor) -> torch.Tensor:
        if not self.indexable:
            raise ValueError(f"sequence space too large for an int64 state index ({self.vocab}^{self.length} objects)")
        n = self.lengths(states)
        digits = states.masked_fill(states == self.pad, 0)
        # a prefix of length n read as an n-digit number: shift the full-width number down
        value = (digits * self._radix).sum(-1) // (self.vocab ** (self.length - n))
        return self._offset[n] + value

    def level(self, states: torch.Tensor) -> torch.Tensor:
        return self.lengths(states)

    def log_completions(self, states: torch.Tensor) -> torch.Tensor:
        """log of the number of objects a state can still become (itself included where it may stop), on the
        append-only tree: sum over lengths j in [max(k, min_length), length] of V^(j - k). Its ratios are the
        policy uniform over objects (ocgfn/descriptor.py), which needs no training."""
        if self.prepend:
            raise ValueError("log_completions: prepend-or-append generation is no tree (objects have many paths)")
        return self._log_completions.to(states.device)[self.lengths(states)]

    figure_kinds: tuple[str, ...] = ()  # figures the report draws for this domain (report/plots.py)
    per_task_report = False  # report tables list each task apart (objectives on different scales)

    def capabilities(self) -> dict[str, str | None]:
        size = f"{self.vocab}^{self.length} objects is more than {MAX_ENUMERABLE} states to list"
        why = {ENUMERABLE: None if self.enumerable else size,
               TREE: "prepend-or-append generation reaches an object by many trajectories" if self.prepend else None,
               LOCAL_MOVES: None, NEIGHBOURS: None, MOLECULES: "token strings are not molecules",
               ANCESTORS: None, COMPLETIONS: None}
        return {name: why[name] for name in CAPABILITIES}

    def ancestors(self, outcomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every state that can still produce each outcome, once per outcome (any size of space, listed or
        not), and the moves between them: rows into ``outcomes``, the states sorted by (row, state), and
        child [P, n_actions], the pair each move leads to inside the same outcome's sub-DAG (-1 for a move
        that leaves it, and for stop). Appending: y's prefixes; prepending or appending: its contiguous
        substrings (at most L(L+1)/2 + 1 per outcome, s0 included). A substring sits at one or more offsets
        of y (an occurrence), and its moves inside are those of its occurrences: append y's next token,
        prepend its previous one."""
        y, length, pad, dev = outcomes, self.length, self.pad, outcomes.device
        starts = self._positions if self.prepend else self._positions[:1]
        start, size = torch.cartesian_prod(starts, self._sizes).unbind(-1)  # every (offset, length) pair
        start, size = start[start + size <= length], size[start + size <= length]
        src = start[:, None] + self._positions  # [K, L]: occurrence k's token i is y[start + i]
        sub = y[:, src.clamp(max=length - 1)].masked_fill((self._positions >= size[:, None])[None], pad)
        fits = start[None, :] + size[None, :] <= self.lengths(y)[:, None]  # [Y, K]
        rows, which = fits.nonzero(as_tuple=True)
        states = sub[rows, which]
        # a substring that occurs at several offsets is one pair: by index, or by its tokens past an int64 index
        keys = torch.cat([rows[:, None], self.index(states)[:, None] if self.indexable else states], dim=1)
        key, pair = torch.unique(keys, dim=0, return_inverse=True)  # pair [N]: each occurrence's pair
        first = torch.full((len(key),), len(rows), device=dev).scatter_reduce(
            0, pair, torch.arange(len(rows), device=dev), reduce="amin")
        k_of = torch.full((length + 1, length + 1), -1, dtype=torch.long, device=dev)  # (start, size) -> k
        k_of[start, size] = torch.arange(len(start), device=dev)
        occurrence = torch.full(fits.shape, -1, dtype=torch.long, device=dev)  # (row, k) -> occurrence
        occurrence[rows, which] = torch.arange(len(rows), device=dev)
        child = torch.full((len(key), self.n_actions), -1, dtype=torch.long, device=dev)
        at, n, lens = start[which], size[which], self.lengths(y)[rows]
        grow = at + n < lens  # append y[at + n]
        token = y[rows, (at + n).clamp(max=length - 1)]
        target = occurrence[rows, k_of[at, (n + 1).clamp(max=length)]]
        child[pair[grow], token[grow]] = pair[target[grow]]
        if self.prepend:  # prepend y[at - 1], where s is not empty
            grow = (at > 0) & (n > 0)
            token = y[rows, (at - 1).clamp(min=0)]
            target = occurrence[rows, k_of[(at - 1).clamp(min=0), (n + 1).clamp(max=length)]]
            child[pair[grow], self.vocab + token[grow]] = pair[target[grow]]
        return rows[first], states[first], child

    def path_step(self, y: torch.Tensor, b: torch.Tensor, j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """On a tree (append-only): the state at depth ``j`` of outcome ``y[b]``'s one trajectory (its first
        j tokens) and the action taken there (its next token, or stop once the state is y)."""
        pos = torch.arange(self.length, device=y.device)
        prefix = torch.where(pos[None, :] < j[:, None], y[b], self.pad)
        action = torch.where(j < self.lengths(y)[b], y[b, j.clamp(max=self.length - 1)], torch.full_like(j, self.stop))
        return prefix, action

    def neighbours(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every single-site substitution [B, length * V, length] (the object itself included) and which exist
        (sites within the object's length)."""
        sites = torch.arange(self.length, device=states.device).repeat_interleave(self.vocab)
        tokens = torch.arange(self.vocab, device=states.device).repeat(self.length)
        near = states[:, None, :].repeat(1, len(sites), 1)
        near[:, torch.arange(len(sites), device=states.device), sites] = tokens
        valid = sites[None, :] < self.lengths(states)[:, None]
        return torch.where(valid[..., None], near, states[:, None, :]), valid

    def propose(self, x: torch.Tensor, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A proposal, its log Hastings correction log q(x|x') - log q(x'|x), and which rows moved.

        Substitution: one uniformly chosen token becomes a different uniform token (symmetric). Where
        lengths vary (min_length < length), each chain instead picks substitution, insertion or
        deletion with probability 1/3: insertion of a uniform token at one of the n+1 gaps and deletion
        of one of the n tokens are each other's reverse, so the correction is +log V for an insertion
        and -log V for a deletion; a move that would leave [min_length, length] keeps x (no reward call).
        """
        n = len(x)
        size = self.lengths(x)
        rows = torch.arange(n, device=x.device)
        site = (torch.rand(n, generator=generator, device=x.device) * size).long()
        shift = torch.randint(1, self.vocab, (n,), generator=generator, device=x.device)
        new = x.clone()
        new[rows, site] = (x[rows, site] + shift) % self.vocab
        moved = torch.ones(n, dtype=torch.bool, device=x.device)
        log_q = torch.zeros(n, device=x.device)
        if self.min_length == self.length:
            return new, log_q, moved
        move = torch.randint(0, 3, (n,), generator=generator, device=x.device)
        gap = (torch.rand(n, generator=generator, device=x.device) * (size + 1)).long()
        token = torch.randint(0, self.vocab, (n,), generator=generator, device=x.device)
        pos = torch.arange(self.length, device=x.device)[None, :]
        pad = torch.full((n, 1), self.pad, dtype=x.dtype, device=x.device)
        right = torch.cat([pad, x[:, :-1]], dim=1)  # right[:, j] = x[:, j - 1]
        inserted = torch.where(pos < gap[:, None], x, torch.where(pos == gap[:, None], token[:, None], right))
        deleted = torch.where(pos < site[:, None], x, torch.cat([x[:, 1:], pad], dim=1))
        ins = (move == 1) & (size < self.length)
        dele = (move == 2) & (size > self.min_length)
        new = torch.where(ins[:, None], inserted, torch.where(dele[:, None], deleted, new))
        moved = (move == 0) | ins | dele
        log_q = (ins.float() - dele.float()) * math.log(self.vocab)
        return torch.where(moved[:, None], new, x), log_q, moved

    def describe(self, states: torch.Tensor) -> dict[str, Any]:
        return {"sequence": self.decode(states)}

    def parse(self, table) -> torch.Tensor:
        return self.encode(list(table["sequence"]))

    def decode(self, states: torch.Tensor) -> list[str]:
        """Strings of a batch (for rewards that need text, and for tables a person reads)."""
        return decode(states, self.alphabet)

    def encode(self, strings: list[str]) -> torch.Tensor:
        return encode(strings, self.alphabet, self.length).to(self.device)

    def from_objects(self, objects: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The states of the strings this environment can build (over its tokens, ``min_length`` to
        ``length`` of them), and bool [len(objects)] saying which could (data sets: ``datasets.prepare``)."""
        fits, rows = [], [encode([], self.alphabet, self.length)]
        for s in objects:
            try:
                row = encode([s], self.alphabet, self.length)
            except ValueError:  # a token outside the alphabet, or too many tokens
                row = None
            fits.append(row is not None and int((row < self.pad).sum()) >= self.min_length)
            if fits[-1]:
                rows.append(row)
        return torch.cat(rows).to(self.device), torch.tensor(fits, dtype=torch.bool)

    def objects(self, states: torch.Tensor) -> list[str]:
        """What a reward plug-in receives: the decoded strings."""
        return self.decode(states)

    def object_keys(self, states: torch.Tensor) -> list[bytes]:
        """One hashable key per distinct object (here the token row itself)."""
        return row_keys(states)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pairwise position-wise (Hamming) distances [A, B] of padded token rows (a pad against a token counts)."""
        return (a[:, None, :] != b[None, :, :]).sum(-1)

    def diversity(self, states: torch.Tensor) -> float:
        """Mean pairwise Hamming distance (0 for fewer than two objects)."""
        return mean_pairwise(self.distance(states, states))

    def sample_metrics(self, states: torch.Tensor, top: torch.Tensor) -> dict[str, float]:
        """Domain-specific metrics of a set of final samples (none for plain sequences)."""
        return {}
