"""Attention autoencoder (issue 6): factorized and hyperprior entropy models through real files, any size,
size vs estimate, every loss term (weighted MAE, MS-SSIM, MSE, LPIPS on a tiny local backbone), the
missing-LPIPS message, and ``lic train``.  Tiny models only (CPU, seconds)."""

import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import lic
from lic import codec, zoo
from lic.cli import main
from lic.errors import FormatError, ModelError
from lic.imageio import prepare, to_tensor
from lic.models import AttentionCodec, build, config_for
from lic.perceptual import ENV, LPIPS

TINY = {"N": 8, "M": 12, "hyper_N": 8, "lambdas": [2.0, 8.0, 32.0]}
ENTROPY = ("factorized", "hyperprior")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """One tiny model per entropy model, saved and loaded like shipped weights."""
    out = {}
    d = tmp_path_factory.mktemp("att")
    for entropy in ENTROPY:
        torch.manual_seed(0)
        m = AttentionCodec(entropy=entropy, **TINY).eval()
        path = d / f"{entropy}.safetensors"
        zoo.save_weights(m, path, name=m.name)
        out[entropy] = path
    return out


@pytest.fixture(scope="module")
def models(weights):
    return {k: zoo.load_weights(p) for k, p in weights.items()}


def encode_decode(img, model, quality):
    enc = codec.encode(img, model=model, quality=quality, reconstruct=True)
    return enc, codec.decode(enc.data, model=model)


# -- coding -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("entropy", ENTROPY)
def test_round_trip_through_files_is_bit_exact(models, weights, photos, entropy):
    model = models[entropy]
    assert model.lic_name == f"attention-{entropy}" and model.config()["entropy"] == entropy
    img = photos["chelsea"]
    for q in (model.qualities[0], model.qualities[-1]):
        enc, dec = encode_decode(img, model, q)
        assert dec.size == img.size and np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction))
        f = codec.read_header(enc.data)
        assert f.header.model == f"attention-{entropy}" and len(f.model_chunks()) == (1 if entropy == "factorized" else 2)
    # the public API, with the weights given by path: the same bytes, decoded to the same image
    enc, _ = encode_decode(img, model, 2)
    data = lic.compress(img, model=str(weights[entropy]), quality=2)
    assert data == enc.data
    assert np.array_equal(np.asarray(lic.decompress(data, model=str(weights[entropy]))), np.asarray(enc.reconstruction))


def test_a_model_built_in_memory_codes_and_keeps_its_digest(photos):
    """A model straight from its constructor (no weights file, so no cached digest) codes a file: coding
    turns its weights channels-last, 1×1 convolutions included, and the digest stays that of its values."""
    torch.manual_seed(0)
    m = AttentionCodec(entropy="factorized", **TINY).eval()
    m.update()
    before = zoo.state_digest(m.state_dict())
    enc, dec = encode_decode(photos["chelsea"], m, 1)
    assert m.g_s[3].skip[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert zoo.state_digest(m.state_dict()) == before == codec.read_header(enc.data).header.digest
    assert np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction))


@pytest.mark.parametrize("entropy", ENTROPY)
@pytest.mark.parametrize("size", [(1, 1), (17, 5), (65, 33), (70, 131)])
def test_odd_sizes(models, entropy, size):
    w, h = size
    rng = np.random.default_rng(w * 1000 + h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    enc, dec = encode_decode(img, models[entropy], 2)
    assert dec.size == (w, h) and np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction))


@pytest.mark.parametrize("entropy", ENTROPY)
def test_payload_matches_the_estimate(models, photos, entropy):
    """Real chunk bytes vs the ideal length under the integer tables and vs the model's estimate."""
    model = models[entropy]
    img = photos["astronaut"]
    x = to_tensor(prepare(img).rgb)
    for q in model.qualities:
        enc = codec.encode(img, model=model, quality=q)
        with torch.no_grad():
            out = model(x, q)
        est = sum((-torch.log2(l)).sum().item() for l in out["likelihoods"].values()) / 8
        payload = sum(len(c) for c in codec.read_header(enc.data).model_chunks())
        ideal = enc.table_bits / 8
        assert abs(payload - ideal) <= 0.005 * ideal + 16, (q, payload, ideal)
        assert abs(payload - est) <= 0.01 * est + 16, (q, payload, est)


def test_wrong_chunk_count_and_quality_are_refused(models):
    m = models["hyperprior"]
    comp = m.compress(torch.rand(1, 3, 20, 20), 1)
    with pytest.raises(FormatError, match="expects 2 data chunks"):
        m.decompress(comp.chunks[:1], 20, 20, 1)
    with pytest.raises(ModelError, match="quality 9 not available"):
        m.compress(torch.rand(1, 3, 20, 20), 9)


def test_names_map_to_the_entropy_switch():
    assert config_for("attention-factorized") == {"arch": "AttentionCodec", "entropy": "factorized"}
    assert config_for("attention-hyperprior") == {"arch": "AttentionCodec", "entropy": "hyperprior"}
    m = build({**config_for("attention-hyperprior"), **TINY})
    assert m.name == "attention-hyperprior" and m.PAD == 64
    assert build(m.config()).config() == m.config()
    for bad in ({"entropy": "gmm"}, {"loss": "l2"}, {"mae": 0, "ms_ssim": 0}, {"lambdas": []}):
        with pytest.raises(ValueError):
            AttentionCodec(**{**TINY, **bad})


# -- LPIPS on a tiny local backbone -----------------------------------------------------------------
VGG_CFG = [4, 4, "M", 8, 8, "M", 8, 8, 8, "M", 8, 8, 8, "M", 8, 8, 8]


def vgg_features(cfg=VGG_CFG) -> nn.Sequential:
    """torchvision's VGG ``features`` layout (conv 3×3 + ReLU, max-pool 2), with tiny widths."""
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    return nn.Sequential(*layers)


def alex_features() -> nn.Sequential:
    """torchvision's AlexNet ``features`` layout with tiny widths."""
    return nn.Sequential(nn.Conv2d(3, 4, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(4, 6, 5, padding=2),
                         nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())


SLICES = {"vgg16": [4, 9, 16, 23, 30], "alexnet": [2, 5, 8, 10, 12]}  # LPIPS's layer ends in ``features``


def fake_lpips_state(kind="vgg16", seed=0):
    torch.manual_seed(seed)
    feats = vgg_features() if kind == "vgg16" else alex_features()
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    widths = [feats[e - 2].out_channels for e in SLICES[kind]]
    heads = {f"lin{l}.model.1.weight": torch.rand(1, c, 1, 1) for l, c in enumerate(widths)}
    return feats, state, heads


def reference_lpips(feats, heads, a, b):
    """LPIPS written out with the torchvision layout: slices of ``features``, unit-normalised channels."""
    kind = "vgg16" if len(feats) > 12 else "alexnet"
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    xa, xb = ((a * 2 - 1) - shift) / scale, ((b * 2 - 1) - shift) / scale
    total, start = 0.0, 0
    for l, end in enumerate(SLICES[kind]):
        xa, xb = feats[start:end](xa), feats[start:end](xb)
        start = end
        na = xa / (xa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = xb / (xb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + nn.functional.conv2d((na - nb) ** 2, heads[f"lin{l}.model.1.weight"]).mean()
    return total


@pytest.mark.parametrize("kind", ["vgg16", "alexnet"])
def test_lpips_matches_the_layer_by_layer_definition(tmp_path, kind):
    feats, state, heads = fake_lpips_state(kind)
    if kind == "vgg16":  # two .pth files, named in one string
        torch.save(state, tmp_path / "backbone.pth")
        torch.save(heads, tmp_path / "heads.pth")
        spec = f"{tmp_path / 'backbone.pth'}{os.pathsep}{tmp_path / 'heads.pth'}"
    else:  # safetensors, named in a list
        from safetensors.torch import save_file

        save_file(state, str(tmp_path / "backbone.safetensors"))
        save_file(heads, str(tmp_path / "heads.safetensors"))
        spec = [str(tmp_path / "backbone.safetensors"), str(tmp_path / "heads.safetensors")]
    net = LPIPS.from_files(spec)
    assert net.backbone == kind and net.taps == 5 and not any(p.requires_grad for p in net.parameters())
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        d, ref = net(a, b), reference_lpips(feats, heads, a, b)
    assert torch.allclose(d, ref, rtol=1e-5) and d > 0
    assert float(net(a, a)) == 0.0


def test_lpips_weights_missing_or_wrong(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ModelError, match="LPIPS weights not given"):
        LPIPS.from_files(None)
    with pytest.raises(ModelError, match=f"LPIPS weights not found at {tmp_path / 'none.pth'}"):
        LPIPS.from_files(str(tmp_path / "none.pth"))
    _, state, heads = fake_lpips_state()
    torch.save(state, tmp_path / "backbone.pth")
    with pytest.raises(ModelError, match="no linear head 'lin0"):
        LPIPS.from_files(str(tmp_path / "backbone.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot be read"):
        LPIPS.from_files(str(tmp_path / "junk.pth"))
    m = AttentionCodec(**TINY, lpips=0.5, lpips_weights=str(tmp_path / "none.pth")).train()
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ModelError) as err:
        m.training_loss(x, m(x, 1), 1)
    msg = str(err.value)
    assert "\n" not in msg and "LPIPS weights not found at" in msg and "refused" in msg


# -- training -------------------------------------------------------------------------------------------
def _train_steps(model, steps=3, size=48):
    torch.manual_seed(1)
    x = torch.rand(2, 3, size, size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for step in range(steps):
        q = model.training_quality(None)
        loss, bpp, mse = model.training_loss(x, model(x, q), q)
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(bpp) and torch.isfinite(mse)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
    return model


@pytest.mark.parametrize("terms,expected", [
    ({"mae": 1.0, "ms_ssim": 0.0}, {"mae"}),
    ({"mae": 0.0, "ms_ssim": 1.0}, {"ms_ssim"}),
    ({"loss": "mse"}, {"mse"}),
    ({"mae": 0.0, "ms_ssim": 0.0, "lpips": 1.0}, {"lpips"}),
    ({"lpips": 0.2}, {"mae", "ms_ssim", "lpips"}),
    ({"mae": 0.0, "ms_ssim": 0.0, "chroma": 1.0}, {"chroma"}),
    ({"chroma": 2.0}, {"mae", "ms_ssim", "chroma"}),
])
def test_each_loss_term_trains(tmp_path, monkeypatch, terms, expected):
    _, state, heads = fake_lpips_state()
    torch.save({**state, **heads}, tmp_path / "lpips_vgg.pth")
    monkeypatch.setenv(ENV, str(tmp_path / "lpips_vgg.pth"))  # found through the environment
    entropy = "hyperprior" if "lpips" in expected else "factorized"
    m = AttentionCodec(entropy=entropy, **TINY, **terms)
    x = torch.rand(1, 3, 48, 48)
    assert set(m.distortion_terms(x, x.flip(-1))) == expected
    _train_steps(m)
    assert m._lpips is None or not any(k.startswith("_lpips") for k in m.state_dict())
    m.eval()
    comp = m.compress(x, 3, reconstruct=True)
    assert torch.equal(m.decompress(comp.chunks, 48, 48, 3), comp.x_hat)


def test_chroma_term_charges_colour_not_luma(photos):
    """The chroma term is the MAE of the JFIF Cb/Cr planes (checked against lic.metrics' conversion):
    a grey shift (luma only) costs nothing, and a greyed image costs its mean chroma magnitude per plane."""
    from lic import metrics
    from lic.models.attention import chroma_mae

    rgb = np.asarray(photos["coffee"].crop((0, 0, 64, 48)).convert("RGB"), dtype=np.float64) / 255
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    assert chroma_mae(x, x + 0.05).item() == pytest.approx(0, abs=1e-12)
    brighter = (x + 0.05).clamp(max=1)  # clipping changes the colour of the brightest pixels, a little
    grey = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    planes = rgb @ metrics.YCBCR.T  # a grey image has Cb = Cr = 0, so this is the whole error
    assert chroma_mae(x, grey).item() == pytest.approx(np.abs(planes[..., 1:]).mean(), rel=1e-9)
    assert chroma_mae(x, grey).item() > 10 * chroma_mae(x, brighter).item()
    m = AttentionCodec(**TINY, chroma=2.0)
    assert m.config()["chroma"] == 2.0 and AttentionCodec(**TINY).config()["chroma"] == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        AttentionCodec(**TINY, chroma=-1.0)


def test_lic_train_saves_a_working_model(tmp_path, photos, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name, img in photos.items():
        img.save(data / f"{name}.png")
    out = tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--steps", "2", "--batch", "2", "--crop", "48",
              "--workers", "0", "--quiet", "--log-every", "1"]
    assert main(["train", "--model", "attention-hyperprior", *common, "--config", json.dumps(TINY)]) == 0
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    model = lic.load_model(str(out / "model.safetensors"))
    assert model.lic_name == "attention-hyperprior" and model.config()["entropy"] == "hyperprior"
    img = photos["coffee"].crop((0, 0, 50, 40))
    enc, dec = encode_decode(img, model, 3)
    assert np.array_equal(np.asarray(dec), np.asarray(enc.reconstruction))
    # LPIPS asked for but its weights are missing: one line, exit 2, before any step
    capsys.readouterr()
    bad = json.dumps({**TINY, "lpips": 0.1, "lpips_weights": str(tmp_path / "nope.pth")})
    assert main(["train", "--model", "attention-factorized", *common, "--out", str(tmp_path / "r2"),
                 "--config", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"LPIPS weights not found at {tmp_path / 'nope.pth'}" in err
    assert main(["train", "--model", "attention-factorized", *common, "--out", str(tmp_path / "r3"),
                 "--config", '{"entropy": "gmm"}']) == 2  # a new --out: the first one holds a run (refused as such)
    assert "unknown entropy model" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_warm_start_with_another_loss(tmp_path, photos, capsys):
    """An MSE warm-up, then the mix loss from its weights (--resume WEIGHTS --config): λ follow the new
    loss; a --config that changes the tensors' shapes, or the number of quality levels, is one line."""
    from lic.models.attention import LAMBDAS_MIX

    data = tmp_path / "data"
    data.mkdir()
    for name, img in photos.items():
        img.save(data / f"{name}.png")
    common = ["--data", str(data), "--steps", "1", "--batch", "2", "--crop", "48", "--workers", "0", "--quiet"]
    five = [0.0035, 0.0067, 0.013, 0.025, 0.0483]  # as many levels as the mix ladder
    assert main(["train", "--model", "attention-factorized", *common, "--out", str(tmp_path / "mse"),
                 "--config", json.dumps({**TINY, "loss": "mse", "lambdas": five})]) == 0
    warm = tmp_path / "mse" / "model.safetensors"
    assert lic.load_model(str(warm)).config()["loss"] == "mse"
    assert main(["train", "--resume", str(warm), *common, "--out", str(tmp_path / "mix"),
                 "--config", '{"loss": "mix"}']) == 0
    cfg = lic.load_model(str(tmp_path / "mix" / "model.safetensors")).config()
    assert cfg["loss"] == "mix" and cfg["lambdas"] == list(LAMBDAS_MIX) and cfg["N"] == TINY["N"]
    capsys.readouterr()
    assert main(["train", "--resume", str(warm), *common, "--out", str(tmp_path / "bad"),
                 "--config", '{"M": 16}']) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "changes the model's shape" in err
    assert main(["train", "--resume", str(warm), *common, "--out", str(tmp_path / "bad"),
                 "--config", '{"lambdas": [1.0, 2.0]}']) == 2
    assert "5 quality levels, the new configuration 2" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_rate_term_stays_fp32_under_bf16_autocast():
    m = AttentionCodec(entropy="hyperprior", **TINY).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(torch.rand(2, 3, 64, 64), 2)
    assert all(l.dtype == torch.float32 for l in out["likelihoods"].values())
    loss, bpp, mse = m.training_loss(torch.rand(2, 3, 64, 64), out, 2)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


THREADS = r"""
import sys, hashlib, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
import lic
from skimage import data
from PIL import Image
img = Image.fromarray(np.ascontiguousarray(data.astronaut()[:90, :130]))
b = lic.compress(img, model=sys.argv[1], quality=3)
d = lic.decompress(b, model=sys.argv[1])
print(hashlib.sha256(b).hexdigest(), hashlib.sha256(np.asarray(d).tobytes()).hexdigest())
"""


def test_same_file_and_image_whatever_the_thread_count(weights):
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", THREADS, str(weights["hyperprior"]), str(n)], capture_output=True,
                           text=True, check=True) for n in (1, 2)]
    assert runs[0].stdout.strip() and runs[0].stdout == runs[1].stdout


@pytest.mark.parametrize("entropy", ENTROPY)
def test_starts_from_trained_hyperprior_weights_as_the_same_function(tmp_path, photos, entropy, load_tool):
    """tools/attention_from_hyperprior.py writes Ballé's transforms into the attention model (wide bottleneck):
    the same analysis and synthesis; the hyperprior variant also codes to the same rate and image."""
    tool = load_tool("attention_from_hyperprior")
    torch.manual_seed(1)
    src = build({"arch": "ScaleHyperprior", "N": 8, "M": 12, "lambdas": [0.002, 0.01, 0.05]})
    with torch.no_grad():  # trained-looking GDNs: off-diagonal γ, uneven β
        for mod in src.modules():
            if hasattr(mod, "gamma"):
                mod.gamma.add_(0.05 * torch.rand_like(mod.gamma))
                mod.beta.mul_(1 + torch.rand_like(mod.beta))
    src.eval().update()
    dst = tool.convert(src, entropy, [2.0, 8.0, 32.0]).eval()
    assert dst.config()["wide_bottleneck"] and dst.name == f"attention-{entropy}"
    diff = tool.agreement(src, dst, size=64)
    assert diff["g_a"] < 1e-5 and diff["g_s"] < 1e-5
    path = tmp_path / "init.safetensors"
    zoo.save_weights(dst, path, name=dst.name)
    loaded = zoo.load_weights(path)
    assert loaded.config() == dst.config()
    if entropy == "hyperprior":
        x = to_tensor(np.asarray(photos["chelsea"].convert("RGB")))[..., :64, :96]
        a, b = src.compress(x, 2, reconstruct=True), loaded.compress(x, 2, reconstruct=True)
        assert abs(sum(map(len, a.chunks)) - sum(map(len, b.chunks))) <= 2
        assert (a.x_hat - b.x_hat).abs().max() < 1e-3
        photos["chelsea"].convert("RGB").crop((0, 0, 96, 64)).save(tmp_path / "crop.png")  # the tool's --check
        (sb, sp), (lb, lp) = (tool.check(m, str(tmp_path / "crop.png"), 2) for m in (src, loaded))
        assert abs(sb - lb) * 96 * 64 / 8 <= 2 and abs(sp - lp) < 0.1
    else:  # a fresh factorized prior starts far too wide; fitted to the latents, it costs fewer bits
        for name, im in photos.items():
            im.save(tmp_path / f"{name}.png")
        before, after = tool.fit_prior(dst, tmp_path, crops=8, size=64, steps=60, lr=2e-2)
        assert after < 0.8 * before
    with pytest.raises(SystemExit, match="one per quality level"):
        tool.convert(src, entropy, [1.0, 2.0])
