"""Learned context model for the ±1 bits of a progressive binary codec, decoded in parallel.

Toderici et al. 2017 code their bits with a "BinaryRNN", one bit after the other.
Here every bit of iteration ``t`` is predicted from

* **all bits of the earlier iterations** ``1..t-1`` (the decoder has them), and
* the bits of iteration ``t`` decoded in earlier *steps*: the ``C`` bit-planes are
  split into ``groups`` channel groups, each optionally coded as two checkerboard
  halves (anchors ``(y+x)`` even, then the rest), so ``steps = groups × (2 if
  checkerboard else 1)`` network evaluations per iteration, each decoding a whole
  set of bits at once.

Which context pays (``benchmarks/recurrent_context.py``, context models trained on the
bits of a briefly CPU-trained codec, held-out bits per coded bit): earlier iterations
only 0.79; + checkerboard 0.73; 2 channel groups 0.61; 2 groups + checkerboard 0.58;
4 groups 0.52; 4 groups + checkerboard 0.50; 8 groups 0.49; 8 groups + checkerboard
0.46.  Channel groups pay more than the checkerboard at equal cost (steps), so the
recurrent codec defaults to 4 groups without checkerboard (4 steps per iteration;
~0.2 s of integer-network time for 8 iterations of a 768×512 image on one core).  On the
bits of a later toderici2017-rnn (the seventh CPU round's weights, 2026-12-02,
docs/training.md) richer contexts gain little at equal training: 8 groups 1.3 % fewer
bits, a 64-wide network 0.6 %, each for twice the context's decode time or more; after
the first few iterations the bits code at about 0.9 of their raw size whatever the context.

Network (conv, ReLU, conv, ReLU, conv; ``k×k`` only in the middle)::

    input, per position:  [bits of iteration 1 | 2 | ... | T-1]   (T-1)·C   zeros for s ≥ t
                          [bits of iteration t decoded so far]     C        zeros elsewhere
                          [one-hot iteration t]                    T
                          [one-hot step s]                         steps
      ─1×1─► ReLU ─k×k─► ReLU ─1×1─► logit of P(bit = +1), one per bit-plane

Determinism (the hard requirement).  The encoder and the decoder must derive
*identical* probabilities on any machine and thread count.  For coding, the
network is evaluated by :class:`lic.layers.integer.IntegerNetwork` (weights and
activations in fixed point, every sum an integer below 2**53 computed in float64,
hence exact whatever the summation order); its integer output (the logit in units
of 2**-8) is mapped by integer thresholds to one of ``buckets`` logit buckets, and
the bit is coded with that bucket's integer frequency table (built once by
:meth:`update` from fixed probabilities, stored with the weights).  Only integers
ever reach the coder.  Training uses the float network with a sigmoid (BCE) rate;
the float path exploits that the first layer is 1×1 and linear: the history term is
a prefix sum over iterations, so all ``T × steps`` predictions cost one batch.

Cost: the first layer is 1×1 and linear, so the coder assembles its integer sums from parts instead of
feeding the network its whole input at every step: the earlier iterations' term is kept and grows by one
iteration at a time (:class:`_IncrementalBuckets`; the same integers as :meth:`BinaryContextModel.buckets_for`,
which stays the reference, tested).

Chunk layout (one chunk per iteration): the varint lengths in 32-bit words of the
first ``steps - 1`` sub-streams, then the ``steps`` constriction ANS word streams
(values grouped by bucket, see :mod:`lic.entropy.coder`).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..container import _get_varint as _container_get_varint
from ..container import _put_varint
from ..errors import FormatError
from . import coder
from . import tables as T


#: Where the integer context network runs when the model is on a CUDA GPU: on the CPU (False, the default), or
#: on the GPU in float64 with cuDNN off (True; exact integer sums there too, :mod:`lic.layers.integer`), so that
#: decoding is not bound by the CPU.  Either way the buckets are the same integers and the files the same.
#: ``benchmarks/device_speed.py --context both`` measures it; not yet run on a real GPU (2026-12-04).
CONTEXT_ON_DEVICE = False


def _get_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The container's varint, read inside a data chunk (sub-stream lengths)."""
    try:
        return _container_get_varint(buf, pos)
    except (EOFError, FormatError):
        raise FormatError("corrupt .lic file: bad sub-stream table in a data chunk") from None


class BinaryContextModel(nn.Module):
    def __init__(self, channels: int, iterations: int, hidden=(32, 32), kernel: int = 3, groups: int = 2,
                 checkerboard: bool = True, buckets: int = 64, logit_max: float = 8.0):
        super().__init__()
        if channels % groups:
            raise ValueError("bit channels must divide into the context groups")
        self.channels, self.iterations = channels, iterations
        self.groups, self.checkerboard = groups, bool(checkerboard)
        self.steps = groups * (2 if checkerboard else 1)
        self.buckets, self.logit_max = buckets, float(logit_max)
        self.cin = (iterations - 1) * channels + channels + iterations + self.steps
        h1, h2 = hidden
        self.layers = nn.ModuleList([nn.Conv2d(self.cin, h1, 1), nn.Conv2d(h1, h2, kernel, padding=kernel // 2),
                                     nn.Conv2d(h2, channels, 1)])
        with torch.no_grad():
            self.layers[-1].weight.mul_(0.1)
            self.layers[-1].bias.zero_()
        from ..layers.integer import IntegerNetwork

        self.net_int = IntegerNetwork(list(self.layers))
        self.register_buffer("thresholds", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("freqs", torch.zeros(0, 0, dtype=torch.int32))
        self.register_buffer("lengths", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("offsets", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("tables_of", torch.zeros(32, dtype=torch.uint8))

    # -- coding order ------------------------------------------------------
    def step_masks(self, h: int, w: int, device=None) -> torch.Tensor:
        """(steps, C, h, w) bool: which bits step ``s`` decodes (each bit in exactly one step)."""
        c = torch.arange(self.channels, device=device).view(-1, 1, 1) // (self.channels // self.groups)
        par = (torch.arange(h, device=device).view(-1, 1) + torch.arange(w, device=device).view(1, -1)) % 2
        masks = []
        for g in range(self.groups):
            for phase in ((0, 1) if self.checkerboard else (None,)):
                m = c == g
                masks.append(m & (par == phase) if phase is not None else m.expand(-1, h, w))
        return torch.stack([m.expand(self.channels, h, w) for m in masks])

    @staticmethod
    def _known(masks: torch.Tensor) -> torch.Tensor:
        """(steps, C, h, w): bits of the current iteration known before step s."""
        return torch.cat([torch.zeros_like(masks[:1]), masks.cumsum(0)[:-1].bool()], 0)

    # -- training (float network) -------------------------------------------
    def logits(self, bits: torch.Tensor) -> torch.Tensor:
        """bits: (B, n, C, h, w) in ±1, n ≤ iterations -> logits of P(+1), same shape (float network)."""
        B, n, C, h, w = bits.shape
        T_, S = self.iterations, self.steps
        l0 = self.layers[0]
        w0 = l0.weight[:, :, 0, 0]
        hid = w0.shape[0]
        w_hist = w0[:, :(T_ - 1) * C].reshape(hid, T_ - 1, C)
        w_cur = w0[:, (T_ - 1) * C:T_ * C]
        w_it = w0[:, T_ * C:T_ * C + T_]
        w_st = w0[:, T_ * C + T_:]
        masks = self.step_masks(h, w, bits.device).to(bits.dtype)
        known = self._known(masks.bool()).to(bits.dtype)
        pre = bits.new_zeros(B, n, hid, h, w)
        if n > 1:
            hist = torch.einsum("ksc,bscyx->bskyx", w_hist[:, :n - 1], bits[:, :n - 1])
            pre[:, 1:] = hist.cumsum(1)
        cur = torch.einsum("kc,btcyx,scyx->btskyx", w_cur, bits, known)
        a = (pre[:, :, None] + cur + w_it[:, :n].t()[None, :, None, :, None, None]
             + w_st.t()[None, None, :, :, None, None] + l0.bias.view(1, 1, 1, -1, 1, 1))
        a = F.relu(a).reshape(B * n * S, hid, h, w)
        a = self.layers[2](F.relu(self.layers[1](a)))
        out = a.reshape(B, n, S, C, h, w)
        return (out * masks[None, None]).sum(2)

    def likelihoods(self, bits: torch.Tensor) -> torch.Tensor:
        """Probability of each observed bit under the float network (for the rate term)."""
        return torch.sigmoid(self.logits(bits) * bits).clamp_min(1e-9)

    # -- integer coding tables ---------------------------------------------
    def _fingerprint(self) -> torch.Tensor:
        h = hashlib.sha256()
        for m in self.layers:
            h.update(m.weight.detach().cpu().float().numpy().tobytes())
            h.update(m.bias.detach().cpu().float().numpy().tobytes())
        h.update(repr((self.buckets, self.logit_max)).encode())
        return torch.frombuffer(bytearray(h.digest()), dtype=torch.uint8).clone()

    def tables_current(self) -> bool:
        return self.freqs.numel() > 0 and bool(torch.equal(self.tables_of.cpu(), self._fingerprint()))

    def bucket_logits(self) -> np.ndarray:
        step = 2 * self.logit_max / self.buckets
        return -self.logit_max + (np.arange(self.buckets) + 0.5) * step

    def integer_coded_layers(self) -> list[nn.Module]:
        """The network runs as an integer copy when coding (its weights must stay storable: lic.layers.integer)."""
        return list(self.layers)

    @torch.no_grad()
    def update(self) -> None:
        from ..layers.integer import A_BITS

        try:
            self.net_int.load_from(list(self.layers))
        except ValueError as exc:
            from ..errors import ModelError

            raise ModelError(f"cannot build the integer bit context model: {exc}") from None
        step = 2 * self.logit_max / self.buckets
        edges = [-self.logit_max + k * step for k in range(1, self.buckets)]
        self.thresholds = torch.tensor([math.floor(e * 2 ** A_BITS) for e in edges], dtype=torch.int64)
        rows = []
        for lg in self.bucket_logits():
            p1 = 1.0 / (1.0 + math.exp(-lg))
            rows.append(T.quantize_pmf(np.array([1.0 - p1, p1]), 0.0))
        packed = T.pack_rows(rows, [0] * self.buckets)
        self.freqs, self.lengths, self.offsets = packed["freqs"], packed["lengths"], packed["offsets"]
        self.tables_of = self._fingerprint()

    def _tables(self) -> dict:
        return {"freqs": self.freqs.cpu(), "lengths": self.lengths.cpu(), "offsets": self.offsets.cpu()}

    def _coding_masks(self, h: int, w: int, device=None):
        """(step masks, known-before-step masks as float64), cached per latent size (and device)."""
        cache = self.__dict__.setdefault("_mask_cache", {})
        key = (h, w, str(device or "cpu"))
        if key not in cache:
            masks = self.step_masks(h, w)
            for k in [k for k in cache if k[:2] != (h, w)]:
                del cache[k]
            known = self._known(masks).double()
            cache[key] = (masks, known if device is None else known.to(device))
        return cache[key]

    def coding_device(self) -> torch.device:
        """Where the integer context network runs: the CPU, or the model's CUDA GPU with CONTEXT_ON_DEVICE."""
        dev = self.layers[0].weight.device
        return dev if CONTEXT_ON_DEVICE and dev.type == "cuda" else torch.device("cpu")

    def _int_input(self, history: torch.Tensor, current: torch.Tensor, t: int, steps, size=None,
                   row0: int = 0) -> torch.Tensor:
        """Integer network input for iteration ``t`` (0-based) and the given steps: (len(steps), cin, h, w).
        ``size``/``row0``: the full latent size and the first row, when ``current`` is a band of it."""
        C, h, w = current.shape
        T_ = self.iterations
        _, known = self._coding_masks(*(size or (h, w)))
        known = known[..., row0:row0 + h, :]
        steps = list(steps)
        x = torch.zeros(len(steps), self.cin, h, w, dtype=torch.float64)
        if t > 0:
            x[:, :t * C] = history[:t].reshape(1, t * C, h, w)
        x[:, (T_ - 1) * C:T_ * C] = current.double()[None] * known[steps]
        x[:, T_ * C + t] = 1
        x[torch.arange(len(steps)), torch.tensor([T_ * C + T_ + s for s in steps])] = 1
        return x

    BAND = 4096  # latent positions per evaluation (bounds memory: ~4 KB of float64 input each)

    def buckets_for(self, history: torch.Tensor, current: torch.Tensor, t: int, steps) -> torch.Tensor:
        """Bucket index of every bit for the given steps: (len(steps), C, h, w) int64, machine-independent;
        the network on its whole input, on the CPU: the reference for the coder's :class:`_IncrementalBuckets`.

        Large latents are evaluated in bands of rows with a halo of the network's receptive
        field; the arithmetic is exact, so the result does not depend on the banding."""
        history, current = history.cpu(), current.cpu()
        C, h, w = current.shape
        halo = sum(pad for _, _, pad, _ in self.net_int.kinds)
        rows = max(1, self.BAND // w)
        out = torch.empty(len(list(steps)), C, h, w, dtype=torch.int64)
        for y0 in range(0, h, rows):
            y1 = min(h, y0 + rows)
            a, b = max(0, y0 - halo), min(h, y1 + halo)
            x = self._int_input(history[..., a:b, :], current[:, a:b], t, steps, (h, w), a)
            out[..., y0:y1, :] = self.net_int(x).to(torch.int64)[..., y0 - a:y1 - a, :]
        return torch.bucketize(out, self.thresholds.cpu(), right=True)

    # -- coding -------------------------------------------------------------
    def _buckets(self, h: int, w: int) -> "_IncrementalBuckets":
        return _IncrementalBuckets(self, h, w, self.coding_device())

    def encode(self, bits: torch.Tensor) -> tuple[list[bytes], list[float]]:
        """bits: (n, C, h, w) ±1 -> one chunk per iteration, and the ideal bits of each under the tables."""
        bits = bits.detach().cpu().to(torch.int64)
        n, C, h, w = bits.shape
        masks, _ = self._coding_masks(h, w)
        tabs = self._tables()
        freqs, lengths, offsets = (tabs[k].numpy().astype(np.int64) for k in ("freqs", "lengths", "offsets"))
        buckets = self._buckets(h, w)
        chunks, ideal = [], []
        for t in range(n):
            rows = buckets.rows(t, bits[t], range(self.steps))  # all steps at once: exact anyway
            buckets.add_iteration(t, bits[t])
            streams, tb = [], 0.0
            for s in range(self.steps):
                m = masks[s]
                if not bool(m.any()):
                    streams.append(b"")
                    continue
                v = ((bits[t][m] + 1) // 2).numpy()
                r = rows[s][m].numpy()
                streams.append(coder.encode(v, r, tabs))
                tb += T.table_bits(v, r, freqs, lengths, offsets)
            head = b"".join(_put_varint(len(s) // 4) for s in streams[:-1])
            chunks.append(head + b"".join(streams))
            ideal.append(tb)
        return chunks, ideal

    def iteration_table_bits(self, buckets: "_IncrementalBuckets", t: int, bits_t: torch.Tensor) -> float:
        """The ideal bits of iteration ``t``'s ±1 bits (C, h, w) under the tables, the earlier iterations' bits
        added to ``buckets`` (:meth:`_buckets`): what :meth:`encode` reports for it, without coding it."""
        bits_t = bits_t.detach().cpu().to(torch.int64)
        masks, _ = self._coding_masks(*bits_t.shape[-2:])
        tabs = {k: v.numpy().astype(np.int64) for k, v in self._tables().items()}
        rows = buckets.rows(t, bits_t, range(self.steps))
        return sum(T.table_bits(((bits_t[masks[s]] + 1) // 2).numpy(), rows[s][masks[s]].numpy(), tabs["freqs"],
                                tabs["lengths"], tabs["offsets"]) for s in range(self.steps) if bool(masks[s].any()))

    def decode(self, chunks: list[bytes], h: int, w: int) -> torch.Tensor:
        """Inverse of :meth:`encode` for however many chunks are given: (len(chunks), C, h, w) ±1 int64."""
        C = self.channels
        masks, _ = self._coding_masks(h, w)
        tabs = self._tables()
        bits = torch.zeros(len(chunks), C, h, w, dtype=torch.int64)
        buckets = self._buckets(h, w)
        for t, data in enumerate(chunks):
            pos, sizes = 0, []
            for _ in range(self.steps - 1):
                n, pos = _get_varint(data, pos)
                sizes.append(4 * n)
            sizes.append(len(data) - pos - sum(sizes))
            if sizes[-1] < 0:
                raise FormatError(f"corrupt .lic file: data chunk {t + 1} is shorter than its sub-streams")
            cur = torch.zeros(C, h, w, dtype=torch.int64)
            for s in range(self.steps):
                part = data[pos:pos + sizes[s]]
                pos += sizes[s]
                m = masks[s]
                if not bool(m.any()):
                    continue
                rows = buckets.rows(t, cur, [s])[0]
                v = coder.decode(part, rows[m].numpy(), tabs)
                if v.min(initial=0) < 0 or v.max(initial=0) > 1:
                    raise FormatError(f"corrupt .lic file: data chunk {t + 1} decodes to non-binary values")
                cur[m] = torch.from_numpy(v) * 2 - 1
            bits[t] = cur
            buckets.add_iteration(t, cur)
        return bits


class _IncrementalBuckets:
    """The coder's bucket indexes, as :meth:`BinaryContextModel.buckets_for` gives them, for one encode or
    decode: the same integers (tested), computed with less work.  The network's first layer is 1×1 and linear,
    so its integer accumulator is assembled from parts: the bits of earlier iterations contribute a sum that
    grows by one term per iteration (kept here, instead of a (T-1)·C-channel input rebuilt at every step), the
    bits known so far of the current iteration one term per step, and the one-hot iteration and step their
    weight columns.  Every part is an integer sum below 2**53 (lic.layers.integer), so any grouping is exact."""

    def __init__(self, cm: BinaryContextModel, h: int, w: int, device: torch.device):
        self.cm, self.dev, self.h, self.w = cm, device, h, w
        T_, C = cm.iterations, cm.channels
        w0, b0 = cm.net_int.layer_weights(0, device)
        w0 = w0[:, :, 0, 0]  # (hidden, cin): the first layer is 1×1
        self.w_hist = w0[:, :(T_ - 1) * C].reshape(-1, T_ - 1, C)
        self.w_cur, self.w_it, self.w_st = w0[:, (T_ - 1) * C:T_ * C], w0[:, T_ * C:T_ * C + T_], w0[:, T_ * C + T_:]
        self.b0 = b0
        self.hist = torch.zeros(w0.shape[0], h, w, dtype=torch.float64, device=device)
        _, self.known = cm._coding_masks(h, w, None if device.type == "cpu" else device)
        self.thresholds = cm.thresholds.to(device)
        self.halo = sum(pad for _, _, pad, _ in cm.net_int.kinds[1:])

    @staticmethod
    def _mix(weights: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
        """(hidden, C) integer weights × (C, h, w) integer planes -> (hidden, h, w), exact in float64."""
        return torch.einsum("kc,cyx->kyx", weights, planes)

    def add_iteration(self, t: int, bits_t: torch.Tensor) -> None:
        """Iteration ``t`` (0-based) is complete: its bits join the history of the iterations after it."""
        if t < self.cm.iterations - 1:
            self.hist += self._mix(self.w_hist[:, t], bits_t.to(self.dev, torch.float64))

    def rows(self, t: int, current: torch.Tensor, steps) -> torch.Tensor:
        """Bucket of every bit of iteration ``t`` for ``steps``, given the bits of it decoded so far (``current``,
        zeros elsewhere): (len(steps), C, h, w) int64 on the CPU."""
        net, h, w = self.cm.net_int, self.h, self.w
        steps = list(steps)
        cur = current.to(self.dev, torch.float64)
        out = torch.empty(len(steps), self.cm.channels, h, w, dtype=torch.int64, device=self.dev)
        rows = max(1, self.cm.BAND // w)
        for y0 in range(0, h, rows):  # bands of rows with the halo of the later layers, as buckets_for
            y1 = min(h, y0 + rows)
            a, b = max(0, y0 - self.halo), min(h, y1 + self.halo)
            base = self.hist[:, a:b] + (self.w_it[:, t] + self.b0).view(-1, 1, 1)
            acc = torch.stack([base + self._mix(self.w_cur, cur[:, a:b] * self.known[s, :, a:b])
                               + self.w_st[:, s].view(-1, 1, 1) for s in steps])
            y = net.run_from(1, net.rescale(0, acc), self.dev)
            out[..., y0:y1, :] = y.to(torch.int64)[..., y0 - a:y1 - a, :]
        return torch.bucketize(out, self.thresholds, right=True).cpu()
