"""The progressive recurrent codec (Toderici et al. 2017): prefixes, truncation, determinism,
bit context model, rate control, training.  Tiny models only (CPU, seconds)."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import lic
from lic import codec, container, ratecontrol, zoo
from lic.cli import main
from lic.errors import FormatError, InputError, ModelError
from lic.imageio import prepare, to_tensor
from lic.models import RecurrentCodec
from lic.models.recurrent import CELLS, RECONSTRUCTIONS
from layered import boundaries, check_every_prefix, reconstructions, train_steps

TINY = {"iterations": 5, "bits": 8, "enc_channels": [8, 16, 16, 16], "dec_channels": [16, 16, 16, 8, 8],
        "context_hidden": [8, 8]}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def rnn_weights(tmp_path_factory):
    torch.manual_seed(0)
    m = RecurrentCodec(**TINY).eval()
    path = tmp_path_factory.mktemp("rnn") / "tiny-rnn.safetensors"
    zoo.save_weights(m, path, name="tiny-rnn")
    return path


@pytest.fixture(scope="module")
def rnn(rnn_weights):
    return zoo.load_weights(rnn_weights)


@pytest.fixture(scope="module")
def image(photos):
    return photos["astronaut"].crop((40, 20, 123, 81))  # 83×61: not a multiple of 16


def test_every_prefix_decodes_to_the_encoders_reconstruction(rnn, image):
    check_every_prefix(rnn, image, "iterations")


def test_cut_inside_a_chunk_warns_and_decodes_the_complete_ones(rnn, image):
    data = lic.compress(image, model=rnn, quality=5)
    ends = boundaries(data)
    full3 = np.asarray(codec.decode(data, model=rnn, layers=3))
    for cut in (ends[2] + 1, ends[2] + 3, ends[3] - 5, ends[3] - 1):
        with pytest.warns(UserWarning, match=r"truncated file: decoding the 3 complete iterations \(it ends inside "
                                             r"iteration 4\)"):
            assert np.array_equal(np.asarray(codec.decode(data[:cut], model=rnn)), full3)
    # a cut at a chunk boundary says so (a prefix, not a file cut mid-way), in the singular for one
    with pytest.warns(UserWarning, match="truncated file: it ends after 1 of 5 iterations, at a chunk boundary"):
        codec.decode(data[:ends[0]], model=rnn)
    with pytest.warns(UserWarning, match=r"decoding the 1 complete iteration \(it ends inside iteration 2\)"):
        codec.decode(data[:ends[0] + 2], model=rnn)
    # not even the first iteration: refused, with no "decoding the 0 complete" warning first
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FormatError, match="not even the first iteration"):
            codec.decode(data[:ends[0] - 2], model=rnn)


def test_every_prefix_and_rate_controlled_file_keeps_alpha_icc_profile_and_metadata(rnn, image, wide_icc):
    img = image.convert("RGBA")
    img.info["icc_profile"] = wide_icc
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    img.info["exif"] = exif.tobytes()
    data = lic.compress(img, model=rnn, quality=3, metadata="exif")
    kinds = [c.kind for c in container.read(data).chunks]
    assert kinds == [container.CHUNK_ALPHA, container.CHUNK_ICC, container.CHUNK_EXIF] + [container.CHUNK_MODEL] * 3
    ends = boundaries(data)
    for cut in ends[3:]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dec = codec.decode(data[:cut], model=rnn)
        assert dec.mode == "RGBA" and dec.info["icc_profile"] == wide_icc and dec.info["exif"] == exif.tobytes()
    picked = lic.decompress(lic.compress(img, model=rnn, iterations=2, metadata="exif"), model=rnn)
    assert picked.info["icc_profile"] == wide_icc and picked.getexif()[0x010F] == "Canon"


def test_corrupted_chunk_and_bad_requests(rnn, image):
    data = lic.compress(image, model=rnn, quality=5)
    ends = boundaries(data)
    bad = bytearray(data)
    bad[(ends[1] + ends[2]) // 2] ^= 0x10
    with pytest.raises(FormatError, match="checksum mismatch in chunk 3"):
        codec.decode(bytes(bad), model=rnn)
    with pytest.raises(ModelError):
        codec.decode(data, model=rnn, layers=0)
    with pytest.raises(ModelError):
        lic.compress(image, model=rnn, quality=6)
    # chunks of another image size decode to garbage-free errors, never a crash
    with pytest.raises(FormatError):
        rnn.decompress([b"\x05"], 16, 16, 5)


@pytest.mark.parametrize("size", [(1, 1), (1, 17), (33, 2), (16, 16), (47, 31)])
def test_any_size(rnn, size):
    w, h = size
    rng = np.random.default_rng(w * 100 + h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    data = lic.compress(img, model=rnn, quality=3)
    _, recs = reconstructions(rnn, img, 3)
    for k in (1, 3):
        dec = lic.decompress(data, model=rnn, layers=k)
        assert dec.size == (w, h) and np.array_equal(np.asarray(dec), recs[k - 1])


def test_bits_with_and_without_entropy_coding(rnn, image):
    comp, _ = reconstructions(rnn, image, 5)
    e = comp.extra
    assert e["iteration_raw_bits"] == [8 * 4 * 6] * 5  # 8 bits per 16×16 block of the padded 96×64 image
    assert len(e["iteration_bits"]) == len(e["iteration_table_bits"]) == 5
    assert e["iteration_bits"] == [8 * len(c) for c in comp.chunks]
    # the eval-mode forward pass reports the probabilities the coder really uses
    with torch.no_grad():
        out = rnn(to_tensor(prepare(image).rgb))
    est = -torch.log2(out["likelihoods"]["bits"].double()).sum().item()
    assert est == pytest.approx(e["table_bits"], rel=1e-6)


@pytest.mark.parametrize("band", [None, 2 * 24])
def test_the_coders_incremental_buckets_equal_the_reference_ones(band):
    """encode/decode assemble the first layer's integer sums from parts (lic.entropy.binary._IncrementalBuckets):
    the same bucket for every bit, every iteration and step, as the network on its whole input (buckets_for)."""
    torch.manual_seed(4)
    from lic.entropy.binary import BinaryContextModel

    cm = BinaryContextModel(channels=8, iterations=5, hidden=(16, 16), groups=2, checkerboard=True)
    with torch.no_grad():
        cm.layers[-1].weight.mul_(30)
        cm.layers[0].weight.mul_(3)
    cm.update()
    if band:
        cm.BAND = band
    bits = torch.where(torch.rand(5, 8, 20, 24) < 0.4, 1, -1)
    masks = cm.step_masks(20, 24)
    inc = cm._buckets(20, 24)
    seen = set()
    for t in range(5):
        for s in range(cm.steps):
            current = bits[t] * cm._known(masks)[s]  # the bits of iteration t decoded before step s
            ref = cm.buckets_for(bits, current, t, [s])
            assert torch.equal(inc.rows(t, current, [s]), ref)
            seen.update(ref.unique().tolist())
        assert torch.equal(inc.rows(t, bits[t], range(cm.steps)), cm.buckets_for(bits, bits[t], t, range(cm.steps)))
        inc.add_iteration(t, bits[t])
    assert len(seen) > 10  # many buckets exercised, not one


def test_integer_context_network_matches_the_float_one_and_codes_near_the_ideal():
    torch.manual_seed(1)
    from lic.entropy.binary import BinaryContextModel

    cm = BinaryContextModel(channels=8, iterations=4, hidden=(16, 16), groups=2, checkerboard=True)
    with torch.no_grad():
        cm.layers[-1].weight.mul_(30)  # confident predictions: exercise many buckets
    cm.update()
    bits = torch.where(torch.rand(1, 4, 8, 20, 24) < 0.3, 1.0, -1.0)
    with torch.no_grad():
        lf = cm.logits(bits)[0]
    masks = cm.step_masks(20, 24)
    for t in range(4):
        b = bits[0].long()
        x = cm._int_input(b, b[t], t, range(cm.steps))
        li = (cm.net_int(x) / 256.0 * masks).sum(0).float()
        assert (li - lf[t]).abs().max() < 0.05
    chunks, ideal = cm.encode(bits[0])
    decoded = cm.decode(chunks, 20, 24)
    assert torch.equal(decoded, bits[0].long())
    assert torch.equal(cm.decode(chunks[:2], 20, 24), bits[0, :2].long())
    # large latents are evaluated in bands of rows: exactly the same buckets
    b = bits[0].long()
    whole = cm.buckets_for(b, b[2], 2, range(cm.steps))
    cm.BAND = 2 * 24
    assert torch.equal(cm.buckets_for(b, b[2], 2, range(cm.steps)), whole)
    assert torch.equal(cm.decode(chunks, 20, 24), bits[0].long())
    del cm.BAND
    one = bits[0, :, :, :1, :1]  # a 1×1 latent: the checkerboard's second half is empty
    assert torch.equal(cm.decode(cm.encode(one)[0], 1, 1), one.long())
    for c, i in zip(chunks, ideal):
        assert 8 * len(c) <= i + 4 * 64 + 24  # ≤ one or two 32-bit words per sub-stream of overhead
    # trained (float path, BCE), the context model learns biased bits: H(0.3) = 0.88 bit per bit
    opt = torch.optim.Adam(cm.parameters(), lr=2e-2)
    for _ in range(30):
        loss = -torch.log2(cm.likelihoods(bits)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not cm.tables_current()
    cm.update()
    chunks, ideal = cm.encode(bits[0])
    assert torch.equal(cm.decode(chunks, 20, 24), bits[0].long())
    assert sum(ideal) < 0.92 * bits[0].numel() and 8 * sum(map(len, chunks)) < 0.93 * bits[0].numel()


DETERMINISM = r"""
import sys, hashlib, numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
import lic
from skimage import data
from PIL import Image
img = Image.fromarray(np.ascontiguousarray(data.astronaut()[100:170, 50:160]))
m = lic.load_model(sys.argv[2])
b = lic.compress(img, model=m, quality=5)
out = [hashlib.sha256(b).hexdigest()]
for k in (1, 3, 5):
    out.append(hashlib.sha256(np.asarray(lic.decompress(b, model=m, layers=k)).tobytes()).hexdigest())
print(" ".join(out))
"""


def test_same_file_and_image_whatever_the_thread_count(rnn_weights):
    runs = [subprocess.run([sys.executable, "-c", DETERMINISM, str(n), str(rnn_weights)], capture_output=True,
                           text=True, check=True) for n in (1, 2)]
    assert runs[0].stdout.strip() and runs[0].stdout == runs[1].stdout


def test_rate_control_hits_its_targets(rnn, image):
    cands = ratecontrol.candidates(image, rnn)
    assert [c.quality for c in cands] == [1, 2, 3, 4, 5]
    px = image.size[0] * image.size[1]
    sizes = [len(c.data) for c in cands]
    assert sizes == sorted(sizes)
    for c in cands:  # every candidate is a complete, valid file of its iteration count
        f = container.read(c.data)
        assert not f.truncated and f.header.quality == c.quality and c.bpp == 8 * len(c.data) / px
    for k, c in enumerate(cands):
        ch = ratecontrol.choose(cands, bpp=c.bpp)
        assert ch.chosen.quality == k + 1 and 8 * len(ch.data) / px <= c.bpp
        if k:
            below = ratecontrol.choose(cands, bpp=c.bpp - 1e-9).chosen
            assert below.quality == k and below.bpp <= c.bpp - 1e-9
    with pytest.raises(InputError, match="below the smallest file"):
        ratecontrol.choose(cands, bpp=cands[0].bpp * 0.99)
    for c in cands:
        ch = ratecontrol.choose(cands, psnr=c.psnr)
        assert ch.reached and ch.chosen.psnr >= c.psnr and ch.chosen.quality <= c.quality
        assert all(o.psnr < c.psnr for o in cands[:ch.chosen.quality - 1])  # the first that reaches it
    ch = ratecontrol.choose(cands, psnr=200)
    assert not ch.reached and ch.chosen.quality == 5
    # the real thing, end to end: the file decodes to the PSNR that was promised
    budget = (cands[2].bpp + cands[3].bpp) / 2
    data = lic.compress(image, model=rnn, bpp=budget)
    assert 8 * len(data) / px <= budget and container.read(data).header.quality == 3
    from lic import metrics

    dec = np.asarray(lic.decompress(data, model=rnn))
    assert metrics.psnr(np.asarray(image), dec) == pytest.approx(cands[2].psnr)
    data = lic.compress(image, model=rnn, psnr=cands[1].psnr)
    assert container.read(data).header.quality <= 2
    assert container.read(lic.compress(image, model=rnn, iterations=4)).header.quality == 4
    with pytest.raises(InputError):
        lic.compress(image, model=rnn, quality=2, bpp=1.0)


def test_rate_control_for_a_non_progressive_model_picks_the_quality(tiny, photos):
    img = photos["coffee"].crop((0, 0, 64, 48))
    cands = ratecontrol.candidates(img, tiny)
    assert [c.quality for c in cands] == tiny.qualities
    ch = ratecontrol.encode(img, tiny, bpp=cands[1].bpp)
    assert ch.chosen.bpp <= cands[1].bpp and ch.chosen.quality >= 2
    with pytest.raises(ModelError, match="not progressive"):
        ratecontrol.encode(img, tiny, iterations=2)


def test_cli_rate_control_decompress_iterations_and_info(rnn_weights, rnn, image, tmp_path, capsys):
    src = tmp_path / "in.png"
    image.save(src)
    out = tmp_path / "a.lic"
    cands = ratecontrol.candidates(image, rnn)
    budget = cands[3].bpp
    assert main(["compress", str(src), "-o", str(out), "--model", str(rnn_weights), "--bpp", str(budget)]) == 0
    line = capsys.readouterr().out
    assert "PSNR" in line and "4 iterations" in line
    data = out.read_bytes()
    assert 8 * len(data) / (image.size[0] * image.size[1]) <= budget
    assert main(["compress", str(src), "-o", str(out), "--force", "--model", str(rnn_weights), "--psnr", "300"]) == 0
    assert "not reached" in capsys.readouterr().out and container.read(out.read_bytes()).header.quality == 5
    assert main(["compress", str(src), "-o", str(out), "--force", "--model", str(rnn_weights),
                 "--iterations", "5", "--quiet"]) == 0
    png = tmp_path / "a.png"
    assert main(["decompress", str(out), "-o", str(png), "--model", str(rnn_weights), "--iterations", "2",
                 "--quiet"]) == 0
    assert np.array_equal(np.asarray(Image.open(png)),
                          np.asarray(codec.decode(out.read_bytes(), model=rnn, layers=2)))
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "data 5" in info and "chunks    5 (complete)" in info
    # the summary line says how many iterations were decoded; asking for more than the file holds warns
    assert main(["decompress", str(out), "-o", str(png), "--force", "--model", str(rnn_weights),
                 "--iterations", "3"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("RGB, 3 iterations")
    assert main(["decompress", str(out), "-o", str(png), "--force", "--model", str(rnn_weights),
                 "--iterations", "1"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("RGB, 1 iteration")
    assert main(["decompress", str(out), "-o", str(png), "--force", "--model", str(rnn_weights),
                 "--iterations", "9"]) == 0
    cap = capsys.readouterr()
    assert cap.out.rstrip().endswith("RGB, 5 iterations")
    assert "--iterations/--layers 9: the file holds 5 iterations; decoding all of them" in cap.err
    assert np.array_equal(np.asarray(Image.open(png)), np.asarray(codec.decode(out.read_bytes(), model=rnn)))
    # exclusive options and a budget below one iteration: one-line errors
    assert main(["compress", str(src), "-o", str(out), "--force", "--model", str(rnn_weights), "-q", "2",
                 "--bpp", "1"]) == 2
    assert main(["compress", str(src), "-o", str(out), "--force", "--model", str(rnn_weights),
                 "--bpp", "0.0001"]) == 2


def _train_steps(cfg, steps=2, size=32):
    return train_steps(RecurrentCodec(**cfg), steps, size)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reconstruction", RECONSTRUCTIONS)
def test_every_cell_and_reconstruction_trains(cell, reconstruction):
    m = _train_steps({**TINY, "iterations": 3, "cell": cell, "reconstruction": reconstruction})
    m.eval()
    x = torch.rand(1, 3, 21, 35)
    comp = m.compress(x, 3, reconstruct=True)
    assert torch.equal(m.decompress(comp.chunks, 21, 35, 3), comp.x_hat)


@pytest.mark.parametrize("loss", ["mse", "ms-ssim", "log-mse", "log-ms-ssim"])
def test_other_losses_train(loss):
    _train_steps({**TINY, "iterations": 2, "loss": loss}, size=40)


def test_residual_scaling_starts_from_the_given_gain_schedule():
    """gain_init=(first, step): β_t = first + (t-1)·step for t >= 1, so from the first step the encoder
    sees g_t·r with g_t = exp(β_t) (G starts at zero); iteration 1 is never scaled."""
    m = RecurrentCodec(**{**TINY, "iterations": 4, "reconstruction": "scaled", "gain_init": [1.0, 0.25]})
    assert torch.allclose(m.gain_bias.detach(), torch.tensor([0.0, 1.0, 1.25, 1.5]))
    x_hat = torch.full((1, 3, 32, 32), 0.1)
    assert m._gain(x_hat, 0) is None
    assert torch.allclose(m._gain(x_hat, 2), torch.full((1, 1, 32, 32), float(np.exp(1.25))))
    assert RecurrentCodec(**{**TINY, "reconstruction": "scaled"}).gain_bias.abs().sum() == 0  # default: g = 1
    assert m.config()["gain_init"] == [1.0, 0.25]


def test_sign_binarizer_trains_on_the_bits_coding_sends():
    """binarizer="sign": in training the decoder gets sign(y), the very bits the coder sends, so a training
    forward pass is deterministic and equals the eval pass; the stochastic (paper's) binarizer is not."""
    m = _train_steps({**TINY, "iterations": 3, "binarizer": "sign"})
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        train_a, train_b = m.train()(x)["x_hats"], m(x)["x_hats"]
        evals = m.eval()(x)["x_hats"]
    assert all(torch.equal(a, b) and torch.equal(a, e) for a, b, e in zip(train_a, train_b, evals))
    stochastic = RecurrentCodec(**{**TINY, "iterations": 3}).train()
    with torch.no_grad():
        assert not torch.equal(stochastic(x)["x_hat"], stochastic(x)["x_hat"])
    with pytest.raises(ValueError, match="binarizer"):
        RecurrentCodec(**{**TINY, "binarizer": "round"})


def test_lic_train_saves_a_working_progressive_model(tmp_path, photos, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name, img in photos.items():
        img.save(data / f"{name}.png")
    out = tmp_path / "run"
    cfg = json.dumps({**TINY, "iterations": 3, "cell": "residual-gru", "reconstruction": "scaled"})
    assert main(["train", "--model", "toderici2017-rnn", "--data", str(data), "--out", str(out), "--steps", "2",
                 "--batch", "2", "--crop", "32", "--workers", "0", "--quiet", "--log-every", "1",
                 "--config", cfg]) == 0
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    model = lic.load_model(str(out / "model.safetensors"))
    assert model.lic_name == "toderici2017-rnn" and model.config()["cell"] == "residual-gru"
    img = photos["coffee"].crop((0, 0, 50, 40))
    b = lic.compress(img, model=model, quality=3)
    assert lic.decompress(b, model=model).size == (50, 40)
    assert lic.decompress(b, model=model, layers=1).size == (50, 40)
    capsys.readouterr()  # a new --out for each refusal below: the first one holds a run (refused as such)
    assert main(["train", "--model", "toderici2017-rnn", "--data", str(data), "--out", str(tmp_path / "x"), "--steps",
                 "1", "--config", "{not json"]) == 2
    assert "--config is not valid JSON" in capsys.readouterr().err
    assert main(["train", "--model", "nonesuch", "--data", str(data), "--out", str(tmp_path / "x"), "--steps", "1"]) == 2
    assert "unknown model to train: nonesuch" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "ft"), "--steps", "1", "--decoder-only",
                 "--resume", str(out / "model.safetensors")]) == 2
    assert capsys.readouterr().err.strip() == ("lic: error: --decoder-only fine-tunes one-shot transform codecs "
                                               "(bmshj2018-hyperprior, attention-*), not toderici2017-rnn")


def test_log_losses_weigh_every_iteration_the_same_in_db():
    """log-mse: making any one iteration's MSE 4× larger (6 dB worse) raises the loss by ln(4)/K, however large
    that iteration's error already was; the summed MSE would hardly notice it at a late, accurate iteration."""
    m = RecurrentCodec(**{**TINY, "iterations": 2, "loss": "log-mse"})
    x = torch.full((1, 3, 16, 16), 0.5)
    lik = {"bits": torch.full((4,), 0.5)}

    def loss(e1, e2):
        out = {"x_hats": [x + e1, x + e2], "x_hat": x + e2, "likelihoods": lik}
        return m.training_loss(x, out, 2)[0].item()

    for e1, e2 in ((0.1, 0.01), (0.01, 0.001)):
        assert loss(e1, 2 * e2) - loss(e1, e2) == pytest.approx(np.log(4) / 2, rel=1e-4)
        assert loss(2 * e1, e2) - loss(e1, e2) == pytest.approx(np.log(4) / 2, rel=1e-4)


def test_widening_keeps_what_the_codec_computes_and_the_new_units_learn(load_tool, photos, tmp_path):
    """tools/widen_recurrent.py: the wider codec sends the same bits and reconstructs the same image at every
    iteration (its new units' outgoing weights are zero), writes a file the same size, and one training step
    gives the new units outgoing weights (they start learning at once)."""
    tool = load_tool("widen_recurrent")
    torch.manual_seed(5)
    src = _train_steps({**TINY, "iterations": 4, "cell": "gru", "binarizer": "sign"}, steps=3).eval()
    src.update()
    enc, dec = [8, 24, 24, 32], [32, 32, 24, 12, 8]
    wide = tool.widen(src, enc, dec).eval()
    assert wide.config()["enc_channels"] == enc and wide.config()["dec_channels"] == dec
    assert sum(p.numel() for p in wide.parameters()) > 1.5 * sum(p.numel() for p in src.parameters())
    x = to_tensor(np.asarray(photos["chelsea"].convert("RGB")))[..., :48, :80]
    a, b = src.compress(x, 4, reconstruct=True), wide.compress(x, 4, reconstruct=True)
    assert a.chunks == b.chunks  # the same bits, coded the same
    assert torch.allclose(a.x_hat, b.x_hat, atol=1e-5)
    assert torch.equal(wide.decompress(b.chunks, 48, 80, 4), b.x_hat)  # and it decodes as any model does
    # dec_rnn.1's inputs are dec_rnn.0's hidden units after depth-to-space; its old units (in each of the
    # z | r | candidate blocks) take nothing from the new ones
    old_rows = tool._positions(3 * src.dec_rnn[1].hidden, 3 * wide.dec_rnn[1].hidden, 3)
    old_in = src.dec_rnn[1].conv_x.weight.shape[1]

    def from_new_inputs():
        return wide.dec_rnn[1].conv_x.weight[old_rows][:, old_in:].abs().sum()

    assert from_new_inputs() == 0 and wide.dec_rnn[1].conv_x.weight[old_rows][:, :old_in].abs().sum() > 0
    wide.train()
    opt = torch.optim.Adam(wide.parameters(), lr=1e-3)
    xt = torch.rand(2, 3, 32, 32)
    out = wide(xt, 4)
    wide.training_loss(xt, out, 4)[0].backward()
    opt.step()
    assert from_new_inputs() > 0
    with pytest.raises(SystemExit, match="only grow"):
        tool.widen(src, [4, 16, 16, 16], TINY["dec_channels"])
    with pytest.raises(SystemExit, match="GRU"):
        tool.widen(RecurrentCodec(**{**TINY, "cell": "lstm"}), enc, dec)
    with pytest.raises(SystemExit, match="multiples of 4"):
        tool.widen(src, enc, [32, 30, 24, 12, 8])
