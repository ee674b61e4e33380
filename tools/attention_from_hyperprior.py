#!/usr/bin/env python
"""Start an attention autoencoder (issue 6) from trained bmshj2018-hyperprior weights.

    python tools/attention_from_hyperprior.py --out runs/att-init/model.safetensors
    python tools/attention_from_hyperprior.py --entropy factorized --fit DIR --out runs/attf-init/model.safetensors
    lic train --resume runs/att-init/model.safetensors --name attention-hyperprior --data DIR --out runs/att ...

Training the attention model from scratch takes GPU-hours; on a CPU its first hours are spent learning what
Ballé's transforms already know (docs/attention.md).  Its architecture contains Ballé's as a special case,
so the trained hyperprior model can be written into it as the same function (up to float rounding), and training then
only has to learn what the extra blocks and the perceptual loss add (a function-preserving start, as in
Chen, Goodfellow and Shlens, "Net2Net", ICLR 2016):

    Ballé g_a:   c5/2 ─GDN─ c5/2 ─GDN─ c5/2 ─GDN─ c5/2 (N→M)
    attention:   c5/2 ─GDN─R─ c5/2 ─GDN─R─A─ c5/2 ─GDN─R─ c5/2 (N→M) ─A─ c3 (M→M)
    Ballé g_s:   d5/2 (M→N) ─IGDN─ d5/2 ─IGDN─ d5/2 ─IGDN─ d5/2 (N→3)
    attention:   c3 (M→M) ─A─R'─ U (M→N) ─R'─ U ─A─R'─ U ─R'─ S (N→3)

(the attention model with ``wide_bottleneck``: its blocks at the latent's resolution are M wide)

- R, R' (residual blocks x + GDN(c3(GDN(c3 x)))): the second convolution is zero, so R(x) = x exactly; the
  first keeps its random start and learns once the second moves.
- A (x + x·sigmoid(c3 x)): mask weights zero and bias zero give A(x) = 1.5·x exactly (with full gradient
  through the sigmoid); the next linear layer is scaled by 2/3.
- U (IGDN(c3(IGDN(S x))) + S₁ x): S takes Ballé's transposed convolution exactly, as its four phases: a
  5×5 stride-2 transposed convolution is a 3×3 convolution to 4·C channels and a pixel shuffle (the
  polyphase form); the first IGDN is Ballé's, c3 is the identity (centre tap), the second IGDN has γ = 0,
  β = 1 (the identity), the skip S₁ is zero.  The last S (to RGB) is Ballé's last transposed convolution.
- The bottleneck c3 (M→M) after g_a's last A, and g_s's first c3 (M→M): the identity (centre tap), the
  former scaled by 2/3.  (Without the M-wide blocks, Ballé's N→M and M→N convolutions would have to pass
  through N channels; an earlier version of this tool that split them to rank N, not kept, lost 12–14 %
  of their energy and its start decoded kodim23 at 13 dB (a one-off measurement), which is why the option
  exists.)  ``--check IMAGE`` codes an image with the source and the converted model side by side.
- Gains, λ count and the latent codec: the hyperprior's own (``--entropy hyperprior``), or a fresh
  factorized prior (``--entropy factorized``).  A fresh prior starts far too wide (about 4 bpp where the
  hyperprior needs 0.5, measured in the first 150 training steps), so with ``--fit DIR`` it is first
  fitted alone to the latents of random crops from DIR at every quality level (maximum likelihood of
  y + U(−½, ½), the transforms fixed): 64 crops, 400 steps, about a minute on the CPU.

Quality levels keep Ballé's gain vectors, so ``--lambdas`` needs as many values as the source model has
(default: the MS-SSIM ladder of six, 2.4 … 60.5).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lic import zoo  # noqa: E402
from lic.models import build  # noqa: E402

LAMBDAS = (2.4, 4.58, 8.73, 16.64, 31.73, 60.5)
A_FACTOR = 1.5  # A(x) = x + x·sigmoid(0) with zero mask weights


def polyphase(w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ConvTranspose2d(k=5, stride 2, padding 2, output_padding 1) weights (cin, cout, 5, 5) as the 3×3
    convolution (4·cout, cin, 3, 3) whose pixel shuffle ×2 gives the same output, and its bias."""
    cin, cout, k, _ = w.shape
    assert k == 5, "only 5×5 stride-2 transposed convolutions"
    out = torch.zeros(cout, 2, 2, cin, 3, 3, dtype=w.dtype)
    for r in range(2):
        for s in range(2):
            for t in range(3):
                for u in range(3):
                    kh, kw = 4 + r - 2 * t, 4 + s - 2 * u
                    if 0 <= kh < 5 and 0 <= kw < 5:
                        out[:, r, s, :, t, u] = w[:, :, kh, kw].T
    return out.reshape(4 * cout, cin, 3, 3), b.repeat_interleave(4)


def centre(mat: torch.Tensor, k: int = 3) -> torch.Tensor:
    """A (cout, cin) matrix as a k×k convolution weight that uses only its centre tap."""
    w = torch.zeros(*mat.shape, k, k, dtype=mat.dtype)
    w[:, :, k // 2, k // 2] = mat
    return w


def convert(src, entropy: str, lambdas) -> torch.nn.Module:
    cfg = src.config()
    if cfg.get("arch") != "ScaleHyperprior":
        raise SystemExit("the source must be a bmshj2018-hyperprior model (ScaleHyperprior)")
    N, M = cfg["N"], cfg["M"]
    if len(lambdas) != len(cfg["lambdas"]):
        raise SystemExit(f"--lambdas needs {len(cfg['lambdas'])} values, one per quality level of the source")
    dst = build({"arch": "AttentionCodec", "entropy": entropy, "N": N, "M": M, "hyper_N": N,
                 "lambdas": list(lambdas), "wide_bottleneck": True})
    s = {k: v.float() for k, v in src.state_dict().items()}
    d = dst.state_dict()
    new = {}

    def put(key, value):
        assert d[key].shape == value.shape, (key, d[key].shape, value.shape)
        new[key] = value.to(d[key].dtype)

    def gdn(dk, sk):
        put(dk + ".beta", s[sk + ".beta"])
        put(dk + ".gamma", s[sk + ".gamma"])

    def identity_gdn(dk, ch):
        put(dk + ".beta", torch.ones(ch))  # β = 1, γ = 0 (the pedestal bound): x·sqrt(1) = x
        put(dk + ".gamma", torch.zeros(ch, ch))

    def residual(dk):  # x + GDN(c3(GDN(c3 x))) = x when the second c3 is zero
        put(dk + ".body.2.weight", torch.zeros_like(d[dk + ".body.2.weight"]))
        put(dk + ".body.2.bias", torch.zeros_like(d[dk + ".body.2.bias"]))

    def attention(dk):  # x + x·sigmoid(0) = 1.5·x
        put(dk + ".mask.weight", torch.zeros_like(d[dk + ".mask.weight"]))
        put(dk + ".mask.bias", torch.zeros_like(d[dk + ".mask.bias"]))

    # analysis
    put("g_a.0.weight", s["g_a.0.weight"]); put("g_a.0.bias", s["g_a.0.bias"]); gdn("g_a.1", "g_a.1")
    residual("g_a.2")
    put("g_a.3.weight", s["g_a.2.weight"]); put("g_a.3.bias", s["g_a.2.bias"]); gdn("g_a.4", "g_a.3")
    residual("g_a.5"); attention("g_a.6")
    put("g_a.7.weight", s["g_a.4.weight"] / A_FACTOR); put("g_a.7.bias", s["g_a.4.bias"]); gdn("g_a.8", "g_a.5")
    residual("g_a.9")
    put("g_a.10.weight", s["g_a.6.weight"]); put("g_a.10.bias", s["g_a.6.bias"])
    attention("g_a.11")
    put("g_a.12.weight", centre(torch.eye(M) / A_FACTOR)); put("g_a.12.bias", torch.zeros(M))

    # synthesis
    put("g_s.0.weight", centre(torch.eye(M))); put("g_s.0.bias", torch.zeros(M))
    attention("g_s.1"); residual("g_s.2")
    ups = [("g_s.3", "g_s.0", "g_s.1"), ("g_s.5", "g_s.2", "g_s.3"), ("g_s.8", "g_s.4", "g_s.5")]
    for dk, sconv, sgdn in ups:
        weight, bias = polyphase(s[sconv + ".weight"], s[sconv + ".bias"])
        if dk in ("g_s.3", "g_s.8"):
            weight = weight / A_FACTOR  # each after an A
        put(dk + ".body.0.0.weight", weight); put(dk + ".body.0.0.bias", bias)
        gdn(dk + ".body.1", sgdn)
        put(dk + ".body.2.weight", centre(torch.eye(N))); put(dk + ".body.2.bias", torch.zeros(N))
        identity_gdn(dk + ".body.3", N)
        put(dk + ".skip.0.weight", torch.zeros_like(d[dk + ".skip.0.weight"]))
        put(dk + ".skip.0.bias", torch.zeros_like(d[dk + ".skip.0.bias"]))
    residual("g_s.4"); attention("g_s.6"); residual("g_s.7"); residual("g_s.9")
    pw, pb = polyphase(s["g_s.6.weight"], s["g_s.6.bias"])
    put("g_s.10.0.weight", pw); put("g_s.10.0.bias", pb)

    put("log_gain", s["log_gain"]); put("log_inv_gain", s["log_inv_gain"])
    if entropy == "hyperprior":
        for k in d:
            if k.startswith("latent."):
                new[k] = s[k]
    state = {**d, **new}
    dst.load_state(state)
    for mod in dst.modules():  # identity GDNs sit at their bounds: let them move from the first step
        if hasattr(mod, "settle_bounds"):
            mod.settle_bounds()
    return dst


@torch.no_grad()
def agreement(src, dst, size: int = 128, seed: int = 0) -> dict:
    """Relative L2 difference of the two models' g_a, and of their g_s on the same latent (a random image)."""
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    ya, yb = src.g_a(x), dst.g_a(x)
    xa, xb = src.g_s(ya), dst.g_s(ya)
    return {"g_a": float((ya - yb).norm() / ya.norm()), "g_s": float((xa - xb).norm() / xa.norm())}


def fit_prior(model, folder, crops: int = 64, size: int = 128, steps: int = 400, lr: float = 1e-2,
              seed: int = 0) -> tuple[float, float]:
    """Fit the factorized prior of ``model`` to the latents of random crops of ``folder`` (all qualities);
    returns the mean bits per latent before and after."""
    import random

    from lic.data import CropDataset

    random.seed(seed)
    torch.manual_seed(seed)
    data = CropDataset(folder, crop=size, length=crops)
    x = torch.stack([data[i] for i in range(crops)]).float() / 255
    with torch.no_grad():
        y = torch.cat([model.g_a(x[i:i + 16]) for i in range(0, crops, 16)])
        ys = torch.cat([y * model._gain(q) for q in model.qualities])
    prior = model.latent.prior
    opt = torch.optim.Adam(prior.parameters(), lr=lr)

    def bits(v):
        return -torch.log2(prior.likelihood(v)).mean()

    with torch.no_grad():
        before = float(bits(torch.round(ys)))
    for step in range(steps):
        batch = ys[torch.randint(len(ys), (32,))]
        loss = bits(batch + torch.empty_like(batch).uniform_(-0.5, 0.5))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(bits(torch.round(ys)))
    return before, after


def check(model, image: str, quality: int) -> tuple[float, float]:
    """bpp of a real file and PSNR of its decoded image, for one image at one quality."""
    import numpy as np

    from lic import codec, metrics
    from lic.imageio import read_image

    img = read_image(image)
    data = codec.encode(img, model=model, quality=quality).data
    ref, rec = np.asarray(img.convert("RGB")), np.asarray(codec.decode(data, model=model).convert("RGB"))
    return 8 * len(data) / (img.width * img.height), metrics.psnr(ref, rec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="bmshj2018-hyperprior", help="model name or weights file")
    ap.add_argument("--entropy", choices=("hyperprior", "factorized"), default="hyperprior")
    ap.add_argument("--lambdas", type=float, nargs="+", default=list(LAMBDAS))
    ap.add_argument("--fit", metavar="DIR", help="factorized: fit the fresh prior to the latents of crops of DIR")
    ap.add_argument("--out", required=True, help="weights file to write (.safetensors)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--check", metavar="IMAGE", help="also code IMAGE with the source and the converted model "
                    "(real files at --check-quality; the converted model as loaded from --out) and print bpp / PSNR of both")
    ap.add_argument("--check-quality", type=int, default=1)
    args = ap.parse_args(argv)
    if args.fit and args.entropy != "factorized":
        ap.error("--fit is for --entropy factorized (the hyperprior keeps the source's priors)")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SystemExit(f"{out} exists (use --force)")
    src = zoo.load_model(args.source)
    model = convert(src, args.entropy, args.lambdas).eval()
    report = agreement(src, model)
    print("relative difference from the source: " + ", ".join(f"{k} {v:.1e}" for k, v in report.items()))
    if args.fit:
        before, after = fit_prior(model, args.fit)
        report["prior_bits_per_latent"] = [before, after]
        print(f"factorized prior fitted to crops of {args.fit}: {before:.3f} -> {after:.3f} bits per latent")
    name = f"attention-{args.entropy}"
    tmp = out.with_name(out.name + ".tmp")
    digest = zoo.save_weights(model, tmp, name, extra={"init": {"from": str(args.source),
                                                              "tool": "tools/attention_from_hyperprior.py",
                                                              "relative_difference": report}})
    tmp.replace(out)
    print(f"{name} -> {out} (digest {digest.hex()})")
    if args.check:  # the source against the file just written, as `lic` will load it
        for label, m in (("source", src), (f"converted ({out.name})", zoo.load_weights(out))):
            bpp, psnr = check(m, args.check, args.check_quality)
            print(f"{Path(args.check).name} q{args.check_quality}, {label}: {bpp:.4f} bpp, {psnr:.2f} dB PSNR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
