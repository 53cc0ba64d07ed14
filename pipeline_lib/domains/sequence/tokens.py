"""Token rows and strings. A batch is a long tensor x [B, L]; each row holds token ids in [0, V)
left-aligned, then padding with V = len(alphabet); row b decodes to the concatenated tokens."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def _check_tokens(x: torch.Tensor, vocab: int) -> None:
    """Token ids in [0, V], padding only after the last token: what every reward below relies on."""
    if x.ndim != 2:
        raise ValueError(f"expected a token tensor [B, L], got shape {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > vocab):
        raise ValueError(f"token ids must lie in [0, {vocab}] ({vocab} = padding), got [{x.min()}, {x.max()}]")
    valid = x < vocab
    if (valid[:, 1:] & ~valid[:, :-1]).any():
        raise ValueError("tokens must be left-aligned: found a token after padding")


def decode(x: torch.Tensor, alphabet: Sequence[str]) -> list[str]:
    """Token rows -> strings, dropping the padding."""
    _check_tokens(x, len(alphabet))
    vocab = len(alphabet)
    return ["".join(alphabet[t] for t in row if t < vocab) for row in x.tolist()]


def encode(strings: Sequence[str], alphabet: Sequence[str], length: int) -> torch.Tensor:
    """Strings -> token rows [B, length] padded with V; tokens may be multi-character (longest match first)."""
    index = {tok: i for i, tok in enumerate(alphabet)}
    if len(index) != len(alphabet) or "" in index:
        raise ValueError(f"alphabet entries must be distinct non-empty strings, got {list(alphabet)}")
    sizes = sorted({len(tok) for tok in alphabet}, reverse=True)
    out = torch.full((len(strings), length), len(alphabet), dtype=torch.long)
    for b, s in enumerate(strings):
        pos = n = 0
        while pos < len(s):
            tok = next((s[pos: pos + k] for k in sizes if s[pos: pos + k] in index), None)
            if tok is None:
                raise ValueError(f"string {b} {s!r}: no token of the alphabet at position {pos} ({s[pos:pos + 8]!r})")
            if n == length:
                raise ValueError(f"string {b} {s!r} has more than {length} tokens")
            out[b, n] = index[tok]
            pos, n = pos + len(tok), n + 1
    return out
