"""The scalable recurrent codec with an RNN hyperprior (Su et al. 2020) and its factorized-prior
ablation: prefixes, truncation, determinism of the scale indexes, size vs estimate, rate
control, training.  Tiny models only (CPU, seconds)."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import lic
from lic import codec, container, metrics, ratecontrol, zoo
from lic.cli import main
from lic.errors import FormatError, InputError, ModelError
from lic.imageio import prepare, to_tensor
from lic.models import ScalableRecurrentCodec, build
from layered import boundaries, check_every_prefix, reconstructions, train_steps

TINY = {"lambdas": [0.01, 0.02, 0.04, 0.08], "enc_channels": [8, 8, 16, 16], "dec_channels": [16, 16, 16, 8, 8],
        "latent": 8, "hyper": 8, "hyper_hidden": 8}
VARIANTS = {"hyper": True, "flat": False}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("scalable")
    out = {}
    for key, hp in VARIANTS.items():
        torch.manual_seed(0)
        m = ScalableRecurrentCodec(hyperprior=hp, **TINY).eval()
        out[key] = d / f"tiny-{key}.safetensors"
        zoo.save_weights(m, out[key], name=f"tiny-su-{key}")
    return out


@pytest.fixture(scope="module")
def models(weights):
    return {k: zoo.load_weights(p) for k, p in weights.items()}


@pytest.fixture(scope="module")
def image(photos):
    return photos["astronaut"].crop((40, 20, 123, 81))  # 83×61: not a multiple of 64


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_prefix_decodes_to_the_encoders_reconstruction(models, image, variant):
    m = models[variant]
    assert m.qualities[-1] == 4 and m.progressive
    comp, recs = check_every_prefix(m, image, "layers")
    h, w = to_tensor(prepare(image).rgb).shape[-2:]
    for k in range(1, 5):  # the model's own decompress, before the 8-bit conversion
        assert torch.equal(m.decompress(comp.chunks[:k], h, w, 4), comp.extra["x_hats"][k - 1])
    assert all(np.isfinite(metrics.psnr(np.asarray(image), r)) for r in recs)


def test_truncated_and_corrupted_files(models, weights, image, tmp_path, capsys):
    m = models["hyper"]
    data = lic.compress(image, model=m, quality=4)
    ends = boundaries(data)
    full2 = np.asarray(codec.decode(data, model=m, layers=2))
    for cut in (ends[1] + 1, ends[1] + 5, ends[2] - 3, ends[2] - 1):
        with pytest.warns(UserWarning, match="truncated file: decoding the 2 complete"):
            assert np.array_equal(np.asarray(codec.decode(data[:cut], model=m)), full2)
    with pytest.raises(FormatError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            codec.decode(data[:ends[0] - 2], model=m)
    bad = bytearray(data)
    bad[(ends[1] + ends[2]) // 2] ^= 0x10
    with pytest.raises(FormatError, match="checksum mismatch in chunk 3"):
        codec.decode(bytes(bad), model=m)
    with pytest.raises(ModelError):
        codec.decode(data, model=m, layers=0)
    with pytest.raises(ModelError):
        lic.compress(image, model=m, quality=5)
    # chunks that do not belong here: one-line errors, never a crash
    for chunks in ([b"\x05"], [b"\x04abc"], [], [b"\x00"] * 5):
        with pytest.raises(FormatError):
            m.decompress(chunks, 16, 16, 4)
    with pytest.raises(FormatError):
        models["flat"].decompress([b"abc"], 16, 16, 4)
    # through the CLI: a cut file decodes its complete layers with a warning, a corrupt one is refused
    src, cutf, badf = tmp_path / "cut.lic", tmp_path / "cut.png", tmp_path / "bad.lic"
    src.write_bytes(data[:ends[2] + 7])
    assert main(["decompress", str(src), "-o", str(cutf), "--model", str(weights["hyper"]), "--quiet"]) == 0
    assert "truncated file: decoding the 3 complete layers" in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(cutf)), np.asarray(codec.decode(data, model=m, layers=3)))
    badf.write_bytes(bytes(bad))
    assert main(["decompress", str(badf), "-o", str(tmp_path / "b.png"), "--model", str(weights["hyper"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checksum mismatch" in err[0]


@pytest.mark.parametrize("size", [(1, 1), (1, 17), (65, 33)])
def test_any_size(models, size):
    w, h = size
    rng = np.random.default_rng(w * 100 + h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    for m in models.values():
        data = lic.compress(img, model=m, quality=3)
        _, recs = reconstructions(m, img, 3)
        for k in (1, 3):
            dec = lic.decompress(data, model=m, layers=k)
            assert dec.size == (w, h) and np.array_equal(np.asarray(dec), recs[k - 1])


def test_ablation_has_no_hyper_stream_and_another_structure(models, image):
    hyp, flat = models["hyper"], models["flat"]
    assert hyp.name == "su2020-rnn-hyperprior" and flat.name == "su2020-rnn-factorized"
    assert build(flat.config()).config() == flat.config() and flat.config()["hyperprior"] is False
    assert not any(k.startswith(("hs_", "ha_", "z_priors", "y_cond")) for k in flat.state_dict())
    assert any(k.startswith("hs_int_cell") for k in hyp.state_dict())
    x = to_tensor(prepare(image).rgb)
    ch, cf = hyp.compress(x, 4), flat.compress(x, 4)
    assert all(b > 0 for b in ch.extra["layer_hyper_bits"]) and cf.extra["layer_hyper_bits"] == [0.0] * 4
    from lic.entropy.binary import _get_varint

    for c in ch.chunks:  # [varint: ẑ bytes][ẑ stream][ŷ stream], streams of 32-bit words
        n, pos = _get_varint(c, 0)
        assert n % 4 == 0 and 0 < n < len(c) - pos and (len(c) - pos - n) % 4 == 0
    assert all(len(c) % 4 == 0 for c in cf.chunks)  # the ŷ stream alone
    with torch.no_grad():
        assert set(hyp(x)["likelihoods"]) == {f"{v}{k}" for v in "yz" for k in range(1, 5)}
        assert set(flat(x)["likelihoods"]) == {f"y{k}" for k in range(1, 5)}


def test_payload_matches_the_models_estimate(models, photos):
    img = photos["coffee"]
    x = to_tensor(prepare(img).rgb)
    for m in models.values():
        comp = m.compress(x, 4)
        with torch.no_grad():
            out = m(x)
        for k in range(4):
            est = sum(-torch.log2(v.double()).sum().item() for key, v in out["likelihoods"].items()
                      if key[1:] == str(k + 1))
            real = 8 * len(comp.chunks[k])
            ideal = comp.extra["layer_table_bits"][k]
            assert comp.extra["layer_bits"][k] == real
            assert abs(real - ideal) <= 0.005 * ideal + 8 * 16, (k, real, ideal)  # + words and the length varint
            assert abs(real - est) <= 0.01 * est + 8 * 16, (k, real, est)


def test_integer_gru_tracks_the_float_one_and_is_exact():
    from lic.layers.integer_rnn import HardConvGRU, IntegerConvGRU

    torch.manual_seed(3)
    cell = HardConvGRU(6, 5, 3, 3)
    icell = IntegerConvGRU(cell)
    icell.load_from(cell)
    h = hi = None
    for _ in range(4):
        x = torch.rand(1, 6, 9, 11) * 2
        with torch.no_grad():
            h, _ = cell(x, h)
        hi = icell(torch.floor(x * 256), hi)
        assert torch.equal(hi, torch.round(hi)) and hi.abs().max() <= 256
        assert (hi / 256 - h).abs().max() < 0.05


DETERMINISM = r"""
import sys, hashlib, numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
import lic
from lic.imageio import prepare, to_tensor
from skimage import data
from PIL import Image
img = Image.fromarray(np.ascontiguousarray(data.astronaut()[100:170, 50:160]))
m = lic.load_model(sys.argv[2])
out = []
m.update()  # tables and integer hyper-synthesis rebuilt from the weights in this process
for k, v in sorted(m.state_dict().items()):
    if not v.is_floating_point():
        out.append(k + "=" + hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest()[:16])
comp = m.compress(to_tensor(prepare(img).rgb), 4)
out.append(hashlib.sha256(b"".join(i.numpy().astype("int64").tobytes() for i in comp.extra["scale_indexes"])).hexdigest())
b = lic.compress(img, model=m, quality=4)
out.append(hashlib.sha256(b).hexdigest())
for k in (1, 2, 4):
    out.append(hashlib.sha256(np.asarray(lic.decompress(b, model=m, layers=k)).tobytes()).hexdigest())
print(" ".join(out))
"""


def test_same_tables_indexes_file_and_image_whatever_the_thread_count(weights):
    runs = [subprocess.run([sys.executable, "-c", DETERMINISM, str(n), str(weights["hyper"])], capture_output=True,
                           text=True, check=True) for n in (1, 2)]
    assert "scale_thresholds=" in runs[0].stdout and "hs_int_cell.conv_x.w=" in runs[0].stdout
    assert runs[0].stdout == runs[1].stdout


def test_rate_control_hits_its_targets(models, weights, image, tmp_path, capsys):
    m = models["hyper"]
    cands = ratecontrol.candidates(image, m)
    assert [c.quality for c in cands] == [1, 2, 3, 4]
    px = image.size[0] * image.size[1]
    assert [len(c.data) for c in cands] == sorted(len(c.data) for c in cands)
    for k, c in enumerate(cands):
        f = container.read(c.data)
        assert not f.truncated and f.header.quality == c.quality
        ch = ratecontrol.choose(cands, bpp=c.bpp)
        assert ch.chosen.quality == k + 1 and ch.chosen.bpp <= c.bpp
        if k:
            assert ratecontrol.choose(cands, bpp=c.bpp - 1e-9).chosen.quality == k
        ch = ratecontrol.choose(cands, psnr=c.psnr)
        assert ch.reached and ch.chosen.psnr >= c.psnr and all(o.psnr < c.psnr for o in cands[:ch.chosen.quality - 1])
    with pytest.raises(InputError, match="below the smallest file"):
        ratecontrol.choose(cands, bpp=cands[0].bpp * 0.99)
    budget = (cands[1].bpp + cands[2].bpp) / 2
    data = lic.compress(image, model=m, bpp=budget)
    assert 8 * len(data) / px <= budget and container.read(data).header.quality == 2
    dec = np.asarray(lic.decompress(data, model=m))
    assert metrics.psnr(np.asarray(image), dec) == pytest.approx(cands[1].psnr)
    target = cands[2].psnr
    data = lic.compress(image, model=m, psnr=target)
    assert metrics.psnr(np.asarray(image), np.asarray(lic.decompress(data, model=m))) >= target
    assert container.read(lic.compress(image, model=m, iterations=3)).header.quality == 3
    # the CLI: --bpp, --psnr, --layers, and decompress --layers
    src, out = tmp_path / "in.png", tmp_path / "a.lic"
    image.save(src)
    w = str(weights["hyper"])
    assert main(["compress", str(src), "-o", str(out), "--model", w, "--bpp", str(cands[2].bpp)]) == 0
    assert "3 layers" in capsys.readouterr().out and 8 * out.stat().st_size / px <= cands[2].bpp
    assert main(["compress", str(src), "-o", str(out), "-f", "--model", w, "--psnr", "300"]) == 0
    assert "not reached" in capsys.readouterr().out and container.read(out.read_bytes()).header.quality == 4
    assert main(["compress", str(src), "-o", str(out), "-f", "--model", w, "--layers", "4", "--quiet"]) == 0
    png = tmp_path / "a.png"
    assert main(["decompress", str(out), "-o", str(png), "--model", w, "--layers", "2", "--quiet"]) == 0
    assert np.array_equal(np.asarray(Image.open(png)), np.asarray(codec.decode(out.read_bytes(), model=m, layers=2)))
    assert main(["compress", str(src), "-o", str(out), "-f", "--model", w, "--bpp", "0.0001"]) == 2
    assert main(["compress", str(src), "-o", str(out), "-f", "--model", w, "-q", "2", "--psnr", "30"]) == 2
    assert main(["compress", str(src), "-o", str(out), "-f", "--model", w, "--layers", "5"]) == 2
    assert "5 layers not available" in capsys.readouterr().err


def _train_steps(cfg, steps=3, size=40):
    m = train_steps(ScalableRecurrentCodec(**cfg), steps, size)
    assert m.training_quality(None) == len(cfg.get("lambdas", TINY["lambdas"]))  # every step trains all layers
    return m


@pytest.mark.parametrize("loss", ["mse", "ms-ssim"])
@pytest.mark.parametrize("hyperprior", [True, False])
def test_training_steps_then_coding(loss, hyperprior):
    m = _train_steps({**TINY, "loss": loss, "hyperprior": hyperprior}).eval()
    assert not m.tables_current()  # the weights moved: compress rebuilds the tables itself
    x = torch.rand(1, 3, 21, 35)
    comp = m.compress(x, 4, reconstruct=True)
    assert m.tables_current()
    assert torch.equal(m.decompress(comp.chunks, 21, 35, 4), comp.x_hat)
    assert torch.equal(m.decompress(comp.chunks[:1], 21, 35, 4), comp.extra["x_hats"][0])


def test_bad_configurations():
    for bad in ({"cell": "nonesuch"}, {"loss": "l1"}, {"lambdas": []}, {"lambdas": [0.01, -1]},
                {"dec_channels": [16, 15, 16, 8, 8]}):
        with pytest.raises(ValueError):
            ScalableRecurrentCodec(**{**TINY, **bad})


@pytest.mark.parametrize("name", ["su2020-rnn-hyperprior", "su2020-rnn-factorized"])
def test_lic_train_saves_a_working_scalable_model(tmp_path, photos, name):
    data = tmp_path / "data"
    data.mkdir()
    for n, img in photos.items():
        img.save(data / f"{n}.png")
    out = tmp_path / "run"
    cfg = {k: v for k, v in TINY.items() if k != "lambdas"}
    assert main(["train", "--model", name, "--data", str(data), "--out", str(out), "--steps", "2", "--batch", "2",
                 "--crop", "32", "--workers", "0", "--quiet", "--log-every", "1", "--lambda", "0.01", "0.02", "0.04",
                 "0.08", "0.16", "--config", json.dumps(cfg)]) == 0
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    model = lic.load_model(str(out / "model.safetensors"))
    assert model.lic_name == name and model.qualities == [1, 2, 3, 4, 5]
    assert model.config()["hyperprior"] == (name == "su2020-rnn-hyperprior")
    img = photos["coffee"].crop((0, 0, 50, 40))
    b = lic.compress(img, model=model, quality=5)
    assert lic.decompress(b, model=model).size == (50, 40)
    assert lic.decompress(b, model=model, layers=1).size == (50, 40)


@pytest.mark.parametrize("entropy", ["hyperprior", "factorized"])
def test_starts_from_progressive_codec_weights(tmp_path, photos, entropy, load_tool):
    """tools/su2020_from_toderici.py: the progressive codec's encoder trunk and decoder, the binarizer's 1×1
    convolution as the latent projection, gains c_k / s (encoder) and 1 / c_k (decoder): the encoder gives the
    binarizer's pre-activation times c_k / s, and the decoder fed ŷ = c_k·b gives the source's image for bits b."""
    tool = load_tool("su2020_from_toderici")
    torch.manual_seed(3)
    src = build({"arch": "RecurrentCodec", "cell": "gru", "reconstruction": "additive", "iterations": 4, "bits": 8,
                 "enc_channels": [8, 8, 16, 16], "dec_channels": [16, 16, 16, 8, 8], "dec_hidden_kernels": [1, 1, 3, 3],
                 "context_hidden": [8, 8]}).eval()
    x = to_tensor(np.asarray(photos["chelsea"].convert("RGB")))[..., :64, :96]
    scale = tool.binarizer_scale(src, x)
    assert scale.shape == (8,) and bool((scale > 0).all())
    lambdas = [0.01, 0.04, 0.09]
    dst = tool.convert(src, entropy, lambdas, scale, step=2.0).eval()
    assert dst.config()["hyperprior"] == (entropy == "hyperprior") and dst.layers == 3 and dst.M == 8
    c = torch.tensor([2.0, 4.0, 6.0])  # step · sqrt(λ_k / λ_1)
    xp = x - 0.5
    with torch.no_grad():
        a = torch.atanh(src._encode_step(xp, [None] * 3).clamp(-1 + 1e-6, 1 - 1e-6))  # the binarizer's pre-activation
        for k in range(3):
            y = dst._encode_step(xp, [None] * 3, k)
            expect = a * (c[k] / scale).view(1, -1, 1, 1)
            assert torch.allclose(y, expect, rtol=1e-3, atol=1e-3 * float(expect.abs().max()))
        bits = torch.where(a >= 0, 1.0, -1.0)
        ref = src._decode_step(bits, [None] * 4, None, None)
        for k in range(3):
            out = dst._decode_step(bits * c[k], [None] * 4, None, k)
            assert torch.allclose(out, ref, atol=1e-5)
    path = tmp_path / "init.safetensors"
    zoo.save_weights(dst, path, name=dst.name)
    photos["chelsea"].convert("RGB").crop((0, 0, 96, 64)).save(tmp_path / "crop.png")
    rows = tool.check(zoo.load_weights(path), str(tmp_path / "crop.png"))  # real files, one per layer count
    assert len(rows) == 3 and rows[0][0] < rows[1][0] < rows[2][0]
    other = build({**src.config(), "reconstruction": "oneshot"})
    with pytest.raises(SystemExit, match="additive"):
        tool.convert(other, entropy, lambdas, scale)


def test_ablation_from_trained_hyperprior_weights(models, image, load_tool):
    """tools/su2020_ablation.py: the factorized variant keeps the hyperprior model's transforms and gains
    (same latents from the encoder, same image from the decoder); fitting changes the priors alone; real files."""
    tool = load_tool("su2020_ablation")
    hyp = models["hyper"]
    flat = tool.convert(hyp).eval()
    assert flat.name == "su2020-rnn-factorized" and flat.config() == {**hyp.config(), "hyperprior": False}
    x = to_tensor(prepare(image).rgb)[..., :32, :48] - 0.5
    with torch.no_grad():
        for k in range(hyp.layers):
            y = hyp._encode_step(x, [None] * len(hyp.enc_rnn), k)
            assert torch.equal(flat._encode_step(x, [None] * len(flat.enc_rnn), k), y)
            y_hat = torch.round(y)
            assert torch.equal(flat._decode_step(y_hat, [None] * len(flat.dec_rnn), None, k),
                               hyp._decode_step(y_hat, [None] * len(hyp.dec_rnn), None, k))
    before = {k: v.clone() for k, v in flat.state_dict().items()}
    ys = tool.layer_latents(flat, to_tensor(prepare(image).rgb))
    hp, wp = (-(-n // flat.PAD) * flat.PAD for n in (image.height, image.width))  # padded inside, 16× down
    assert [tuple(y.shape) for y in ys] == [(1, flat.M, hp // 16, wp // 16)] * 4
    fit = tool.fit_priors(flat, ys, steps=30)
    assert all(after < first for first, after in fit)  # bits per latent on the rounded latents
    changed = {k for k, v in flat.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("y_priors.") for k in changed)  # the priors, nothing else
    flat.eval()
    data = codec.encode(image, model=flat, quality=4).data
    assert codec.decode(data, model=flat).size == image.size
    with pytest.raises(SystemExit, match="hyperprior"):
        tool.convert(models["flat"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_widening_keeps_every_layer(models, image, variant, load_tool):
    """tools/widen_recurrent.py on the scalable codec: wider trunks, the same latents, files and images."""
    src = models[variant]
    wide = load_tool("widen_recurrent").widen(src, [8, 16, 24, 32], [32, 24, 16, 12, 8]).eval()
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in src.parameters())
    x = to_tensor(prepare(image).rgb)
    a, b = src.compress(x, 4, reconstruct=True), wide.compress(x, 4, reconstruct=True)
    assert a.chunks == b.chunks and torch.allclose(a.x_hat, b.x_hat, atol=1e-5)
    assert torch.equal(wide.decompress(b.chunks, *x.shape[-2:], 4), b.x_hat)
