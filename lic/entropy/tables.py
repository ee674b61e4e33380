"""Integer probability tables: the only thing the entropy coder ever sees.

Why integers: encoder and decoder must use *identical* probabilities or the
decoder produces garbage.  Floating-point density evaluation can differ in
the last bit between machines, libraries and thread counts, so lic never
evaluates a density while coding.  Instead, :meth:`update` of each entropy
model evaluates the densities once (float64, on the CPU) and quantizes them
into integer frequency tables, which are stored with the weights and covered
by the weights digest in every file header.  Coding then only indexes these
tables.

A table set has ``R`` rows; row ``r`` codes the integers
``offset[r] .. offset[r] + length[r] - 1`` with frequencies ``freqs[r, :length[r]]``
and an *escape* symbol ``freqs[r, length[r]]`` for values outside that range
(their value then follows, coded with uniform bits).  Every row sums to
``2**PRECISION`` and every frequency is at least 1.
"""

from __future__ import annotations

import numpy as np
import torch

PRECISION = 20
TOTAL = 1 << PRECISION


def quantize_pmf(pmf: np.ndarray, tail: float) -> np.ndarray:
    """Turn probabilities (plus an escape mass ``tail``) into integer frequencies.

    Returns ``len(pmf) + 1`` positive integers summing to ``TOTAL``; the last is
    the escape symbol.  Deterministic for a given input.
    """
    p = np.concatenate([np.asarray(pmf, dtype=np.float64), [max(float(tail), 0.0)]])
    p = np.maximum(p, 0.0)
    if len(p) >= TOTAL:
        raise ValueError("table too long for the probability precision")
    p = p / p.sum()
    raw = p * TOTAL
    f = np.maximum(1, np.floor(raw)).astype(np.int64)
    # largest-remainder rounding: hand out (or take back) the missing counts where
    # rounding hurt most, never pushing a frequency below 1
    while True:
        diff = int(TOTAL - f.sum())
        if diff == 0:
            break
        rem = raw - f
        if diff > 0:
            order = np.argsort(-rem, kind="stable")[:diff]
            f[order] += 1
        else:
            cand = np.nonzero(f > 1)[0]
            order = cand[np.argsort(rem[cand], kind="stable")][:-diff]
            f[order] -= 1
    return f


def pack_rows(rows: list[np.ndarray], offsets: list[int]) -> dict[str, torch.Tensor]:
    """Pack per-row frequency arrays (each ending in its escape) into padded tensors."""
    width = max(len(r) for r in rows)
    freqs = np.zeros((len(rows), width), dtype=np.int32)
    for i, r in enumerate(rows):
        freqs[i, : len(r)] = r
    return {
        "freqs": torch.from_numpy(freqs),
        "lengths": torch.tensor([len(r) - 1 for r in rows], dtype=torch.int32),
        "offsets": torch.tensor(offsets, dtype=torch.int32),
    }


def table_bits(values: np.ndarray, rows: np.ndarray, freqs: np.ndarray, lengths: np.ndarray,
               offsets: np.ndarray) -> float:
    """Ideal code length in bits of ``values`` under the integer tables (escapes included)."""
    sym = values.astype(np.int64) - offsets[rows]
    esc = (sym < 0) | (sym >= lengths[rows])
    sym = np.where(esc, lengths[rows], sym)
    bits = -np.log2(freqs[rows, sym] / TOTAL).sum()
    if esc.any():
        from .coder import escape_bits

        bits += sum(escape_bits(int(v), int(o), int(n)) for v, o, n in
                    zip(values[esc], offsets[rows[esc]], lengths[rows[esc]]))
    return float(bits)
