"""Entropy coding with constriction's ANS coder over integer tables.

One function pair serves every model: :func:`encode` takes integer values and,
for each value, the index of the table row that models it; :func:`decode`
takes the same row indexes (the decoder always knows them: a channel index
for a factorized prior, a scale index for a Gaussian conditional) and
returns the values.

Values are grouped by row and each group is coded with one fixed categorical
model, so the coder runs in a handful of vectorized calls instead of one call
per symbol.  Out-of-range values are coded as the row's escape symbol
followed by the overflow (a side bit, a 5-bit length and the bits) with
uniform models.  ANS is a stack, so operations are recorded in decode order
and replayed in reverse when encoding.
"""

from __future__ import annotations

import numpy as np
import constriction

from ..errors import FormatError
from .tables import TOTAL

_Categorical = constriction.stream.model.Categorical
_Uniform = constriction.stream.model.Uniform


def _model(freqs_row: np.ndarray, length: int):
    # Integer frequencies / 2**PRECISION are exact in float64, and constriction's
    # (non-"perfect") quantization is a deterministic function of its input,
    # so encoder and decoder build bit-identical models on every machine.
    return _Categorical(freqs_row[: length + 1].astype(np.float64) / TOTAL, perfect=False)


def escape_bits(value: int, offset: int, length: int) -> float:
    """Bits used for the overflow of an escaped value (excluding the escape symbol)."""
    d = (offset - value - 1) if value < offset else (value - offset - length)
    return 1 + 5 + max(d.bit_length() - 1, 0)


def _escape_ops(values: np.ndarray, offset: int, length: int):
    """Uniform-coded overflow of escaped values: side, bit length, then the bits below the top bit."""
    ops = []
    for v in values.tolist():
        below = v < offset
        d = (offset - v - 1) if below else (v - offset - length)
        nb = d.bit_length()
        ops.append((np.array([int(below)], np.int32), _Uniform(2)))
        ops.append((np.array([nb], np.int32), _Uniform(32)))
        if nb > 1:
            rest = d - (1 << (nb - 1))
            nbits = nb - 1
            chunks = []
            while nbits > 0:
                take = min(16, nbits)
                chunks.append((rest & ((1 << take) - 1), take))
                rest >>= take
                nbits -= take
            for val, take in chunks:
                ops.append((np.array([val], np.int32), _Uniform(1 << take)))
    return ops


def encode(values: np.ndarray, rows: np.ndarray, tables: dict) -> bytes:
    """Entropy-code integer ``values`` (any shape) whose model rows are ``rows`` (same shape)."""
    freqs = tables["freqs"].numpy()
    lengths = tables["lengths"].numpy()
    offsets = tables["offsets"].numpy()
    values = np.asarray(values, dtype=np.int64).ravel()
    rows = np.asarray(rows, dtype=np.int64).ravel()
    ops = []  # (symbols, model) in decode order
    for r in np.unique(rows):
        v = values[rows == r]
        sym = v - offsets[r]
        esc = (sym < 0) | (sym >= lengths[r])
        sym = np.where(esc, lengths[r], sym).astype(np.int32)
        ops.append((sym, _model(freqs[r], int(lengths[r]))))
        if esc.any():
            ops += _escape_ops(v[esc], int(offsets[r]), int(lengths[r]))
    coder = constriction.stream.stack.AnsCoder()
    for sym, model in reversed(ops):
        coder.encode_reverse(sym, model)
    return coder.get_compressed().tobytes()


def decode(data: bytes, rows: np.ndarray, tables: dict) -> np.ndarray:
    """Inverse of :func:`encode`; returns int64 values shaped like ``rows``."""
    freqs = tables["freqs"].numpy()
    lengths = tables["lengths"].numpy()
    offsets = tables["offsets"].numpy()
    shape = np.shape(rows)
    rows = np.asarray(rows, dtype=np.int64).ravel()
    if len(data) % 4:
        raise FormatError("corrupt .lic file: entropy-coded chunk has a bad length")
    words = np.frombuffer(data, dtype=np.uint32).copy()
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        out = np.empty(rows.shape, dtype=np.int64)
        for r in np.unique(rows):
            idx = np.nonzero(rows == r)[0]
            sym = coder.decode(_model(freqs[r], int(lengths[r])), len(idx)).astype(np.int64)
            v = sym + offsets[r]
            esc = np.nonzero(sym == lengths[r])[0]
            for e in esc.tolist():
                below = int(coder.decode(_Uniform(2), 1)[0])
                nb = int(coder.decode(_Uniform(32), 1)[0])
                d = 0
                if nb >= 1:
                    d = 1 << (nb - 1)
                    nbits, shift = nb - 1, 0
                    while nbits > 0:
                        take = min(16, nbits)
                        d += int(coder.decode(_Uniform(1 << take), 1)[0]) << shift
                        shift += take
                        nbits -= take
                start, n = int(offsets[r]), int(lengths[r])  # Python ints: a hostile d must not wrap an int32
                v[e] = start - 1 - d if below else start + n + d
            out[idx] = v
        # The encoder's stream ends exactly where its last value ends: words left over or missing leave the
        # coder off its initial state (data that passed its checksum yet is not this model's stream).
        consumed = coder.is_empty()
    except (ValueError, RuntimeError, AssertionError) as exc:  # constriction rejects invalid data
        raise FormatError(f"corrupt .lic file: entropy decoding failed ({exc})") from None
    if not consumed:
        raise FormatError("corrupt .lic file: an entropy-coded stream does not end where its values do")
    return out.reshape(shape)
