"""Encoder-side latent refinement (``lic compress --refine N``): a cheaper file by the model's own cost,
decoded by the unchanged decoder to exactly the encoder's reconstruction."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import lic.models.refine as refine
import lic.ratecontrol
from lic import codec, zoo
from lic.imageio import to_tensor
from lic.models import AttentionCodec


def cost(enc, ref: np.ndarray, model, quality: int) -> float:
    """J: the model's own objective (rd_cost) with the ideal bits under the coding tables and the decoded
    8-bit pixels (bmshj2018: bpp + λ·255²·MSE; the attention models: their MS-SSIM/MAE mix)."""
    rec = np.asarray(enc.reconstruction.convert("RGB"))
    bpp = enc.table_bits / (ref.shape[0] * ref.shape[1])
    return float(model.rd_cost(to_tensor(ref), to_tensor(rec), torch.tensor(bpp), quality))


def check(model, img, quality, steps, **kw):
    """Plain and refined encodes: (J plain, J refined, refined encode), after the properties every refined
    file has: it decodes to the encoder's reconstruction bit for bit, costs no more, and the model is unchanged."""
    ref = np.asarray(img.convert("RGB"))
    before = zoo.state_digest(model.state_dict())
    plain = codec.encode(img, model=model, quality=quality, reconstruct=True)
    refined = codec.encode(img, model=model, quality=quality, reconstruct=True, refine=steps, **kw)
    assert np.array_equal(np.asarray(codec.decode(refined.data, model=model)), np.asarray(refined.reconstruction))
    assert zoo.state_digest(model.state_dict()) == before
    assert all(p.grad is None for p in model.parameters())
    j0, j1 = cost(plain, ref, model, quality), cost(refined, ref, model, quality)
    assert j1 <= j0
    return j0, j1, refined


def test_refinement_lowers_the_shipped_models_cost_on_a_photo(photos):
    m = zoo.load_model("bmshj2018-hyperprior")
    img = photos["astronaut"].crop((0, 0, 120, 90))  # padded inside to 128 x 128: the cost covers real pixels only
    j0, j1, refined = check(m, img, 3, 15)
    assert j1 < 0.99 * j0  # a real gain, not just "never worse"
    again = codec.encode(img, model=m, quality=3, refine=15)
    assert again.data == refined.data  # seeded: the same input gives the same file


@pytest.mark.parametrize("entropy", ["hyperprior", "factorized"])
def test_refinement_in_tiles_never_costs_more(photos, monkeypatch, one_thread, entropy):
    """A large image is refined tile by tile (here tiles of 4 latents = 64 pixels, so a small photo makes
    3 x 2 tiles); every tile's steps are reported, and the merged latents still decode exactly."""
    monkeypatch.setattr(refine, "TILE", 4)
    torch.manual_seed(0)
    m = AttentionCodec(entropy=entropy, N=8, M=12, hyper_N=8, lambdas=[2.0, 8.0, 32.0]).eval()
    m.update()
    img = photos["coffee"].crop((0, 0, 150, 100))
    seen = []
    check(m, img, 2, 6, progress=seen.append)
    h, w = -(-100 // m.PAD) * m.PAD // 16, -(-150 // m.PAD) * m.PAD // 16
    assert seen == [6] * refine.blocks(m, 100, 150) and len(seen) == -(-h // 4) * -(-w // 4)


def test_images_too_small_to_search_are_coded_as_before(photos):
    m = zoo.load_model("bmshj2018-hyperprior")
    for size in ((1, 1), (15, 40)):
        img = photos["chelsea"].crop((0, 0, *size))
        assert codec.encode(img, model=m, quality=2, refine=5).data == codec.encode(img, model=m, quality=2).data


def one_line_error(args):
    p = subprocess.run([sys.executable, "-m", "lic", "compress", *map(str, args)], capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    lines = [line for line in p.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("lic: error:"), p.stderr
    return lines[0]


def test_refine_is_refused_where_it_does_not_apply(tmp_path, photo_file):
    assert "steps >= 0" in one_line_error([photo_file, "-o", tmp_path / "a.lic", "--refine", "-1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]  # no output written

    class Plain(codec.CompressionModel):  # every installed model refines; a model of one's own may not
        name = "plain"

    with pytest.raises(lic.errors.ModelError, match="no encoder-side refinement"):
        codec.check_refine(Plain(), 5)


def test_eval_measures_refined_files(tmp_path, photos):
    import json

    from lic.cli import main

    d = tmp_path / "imgs"
    d.mkdir()
    photos["coffee"].crop((0, 0, 64, 48)).save(d / "c.png")
    for steps in (0, 4):
        assert main(["eval", str(d), "--qualities", "2", "--refine", str(steps), "--out", str(tmp_path / f"r{steps}"),
                     "--quiet"]) == 0
    plain, refined = (json.loads((tmp_path / f"r{s}" / "summary.json").read_text()) for s in (0, 4))
    assert (plain["refine"], refined["refine"]) == (0, 4)
    m = zoo.load_model("bmshj2018-hyperprior")
    cost = [v["qualities"]["2"]["table_bytes"] * 8 / (64 * 48) + m.lambdas[1] * 255 ** 2 / 10 ** (v["qualities"]["2"]["psnr"] / 10)
            for v in (plain, refined)]
    assert cost[1] <= cost[0]  # the model's own objective, from what eval wrote (one image: mean = value)


def layered(model, img, steps):
    """(files, J) of a scalable model's file of all layers, ``files[k-1]`` cut after layer k, each checked to
    decode to the encoder's own reconstruction after k layers; J its loss Σ_k λ_k·255²·MSE_k + bits per pixel
    (the coding tables' bits, the decoder's 8-bit pixels): what refinement lowers."""
    from lic.imageio import from_tensor, prepare
    from lic.ratecontrol import prefix_files

    ref = np.asarray(img.convert("RGB"), np.float64)
    comp, files = prefix_files(prepare(img), model, refine=steps)
    dist = 0.0
    for lam, f, x_hat in zip(model.lambdas, files, comp.extra["x_hats"]):
        dec = np.asarray(codec.decode(f, model=model))
        assert np.array_equal(dec, np.asarray(from_tensor(x_hat)))
        dist += lam * float(np.mean((dec - ref) ** 2))
    return files, dist + comp.extra["table_bits"] / (ref.shape[0] * ref.shape[1])


def test_scalable_refinement_lowers_the_loss_of_the_whole_file(photos):
    """su2020: the latents of all layers are searched together; every prefix of the refined file still
    decodes (exactly), the file's loss drops, and the same input gives the same file."""
    m = zoo.load_model("su2020-rnn-hyperprior")
    img = photos["astronaut"].crop((100, 60, 220, 150))
    before = zoo.state_digest(m.state_dict())
    plain, j0 = layered(m, img, 0)
    refined, j1 = layered(m, img, 20)  # 10 steps gained only 0.4 % with some weights
    assert len(refined) == len(plain) == m.layers and j1 < 0.99 * j0
    assert layered(m, img, 20)[0] == refined
    assert zoo.state_digest(m.state_dict()) == before and all(p.grad is None for p in m.parameters())
    choice = lic.ratecontrol.encode(img, m, bpp=8 * len(refined[1]) / (120 * 90), refine=20)
    assert choice.chosen.data == refined[1]  # rate control picks among the refined prefixes


def test_scalable_refinement_in_tiles_without_hyperprior(photos, monkeypatch, one_thread):
    """The ablation (a factorized prior per layer) refines too, here tile by tile (4 latents = 64 pixels)."""
    from lic.models import ScalableRecurrentCodec

    monkeypatch.setattr(refine, "TILE", 4)
    torch.manual_seed(0)
    m = ScalableRecurrentCodec(hyperprior=False, lambdas=(0.01, 0.04), enc_channels=(8, 8, 8, 8),
                               dec_channels=(8, 8, 8, 8, 8), latent=8).eval()
    m.update()
    img = photos["coffee"].crop((0, 0, 150, 100))
    _, j0 = layered(m, img, 0)
    _, j1 = layered(m, img, 6)
    assert j1 <= j0


def test_rate_control_with_refine_through_the_cli(tmp_path, photos):
    """``lic compress --bpp B --refine N`` (a progress bar over the search's steps) writes the file the API gives."""
    from lic.cli import main

    img = photos["chelsea"].crop((0, 0, 96, 64))
    img.save(tmp_path / "c.png")
    for name in ("su2020-rnn-hyperprior", "bmshj2018-hyperprior"):
        out = tmp_path / f"{name}.lic"
        assert main(["compress", str(tmp_path / "c.png"), "-o", str(out), "--model", name, "--bpp", "1.0",
                     "--refine", "3"]) == 0
        assert out.read_bytes() == lic.compress(img, model=name, bpp=1.0, refine=3)


def progressive(model, img, steps, iterations, **kw):
    """The compressed result and prefix files of a progressive binary model's file of ``iterations``, each
    prefix checked to decode to the encoder's own reconstruction after that many iterations."""
    from lic.imageio import from_tensor, prepare
    from lic.ratecontrol import prefix_files

    comp, files = prefix_files(prepare(img), model, iterations, refine=steps, **kw)
    for f, x_hat in zip(files, comp.extra["x_hats"]):
        assert np.array_equal(np.asarray(codec.decode(f, model=model)), np.asarray(from_tensor(x_hat)))
    return comp, files


def first_iteration_cost(comp, img) -> float:
    """J_1 of lic.models.refine_bits: 10·log10(MSE) of the first reconstruction (before 8-bit rounding) + the
    slope times its bits under the coding tables per pixel: what the search lowers, from the same start."""
    from lic.models.refine_bits import SLOPE

    ref = torch.from_numpy(np.asarray(img.convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]
    mse = float(torch.mean((comp.extra["x_hats"][0] - ref) ** 2))
    return 10 * np.log10(mse) + SLOPE * comp.extra["iteration_table_bits"][0] / (img.width * img.height)


def test_binary_codec_search_lowers_the_first_iterations_cost(photos):
    """toderici2017-rnn --refine: each iteration's bits are searched for; every prefix of the file still decodes to
    the encoder's reconstruction, the first iteration (the one both encoders start alike) costs less, the same input
    gives the same file, and the model is left as it was."""
    m = zoo.load_model("toderici2017-rnn")
    img = photos["astronaut"].crop((100, 60, 220, 150))  # 120 x 90: padded inside to 128 x 96
    before = zoo.state_digest(m.state_dict())
    plain, _ = progressive(m, img, 0, 3)
    refined, files = progressive(m, img, 8, 3)
    assert first_iteration_cost(refined, img) < first_iteration_cost(plain, img) - 0.05
    assert progressive(m, img, 8, 3)[1] == files
    assert zoo.state_digest(m.state_dict()) == before and all(p.grad is None for p in m.parameters())
    choice = lic.ratecontrol.encode(img, m, bpp=8 * len(files[1]) / (120 * 90) + 1e-9, refine=8)
    assert choice.chosen.data == files[1]  # rate control picks among the refined prefixes (coded to 16 here)


def test_binary_codec_search_in_tiles(photos, monkeypatch, one_thread):
    """Large images are searched tile by tile (here 2 latents = 32 pixels, so 100 x 150 makes 4 x 5 tiles, the
    last ones partly padding); every tile's steps are reported, the MS-SSIM model's cost is in MS-SSIM dB, and
    every prefix still decodes exactly."""
    import lic.models.refine_bits as refine_bits

    monkeypatch.setattr(refine_bits, "TILE", 2)
    m = zoo.load_model("toderici2017-rnn-msssim")
    img = photos["coffee"].crop((0, 0, 150, 100))
    seen = []
    progressive(m, img, 3, 2, progress=seen.append)
    assert refine_bits.blocks(100, 150) == 4 * 5 and seen == [3] * (2 * 4 * 5)


def test_binary_codec_search_through_the_cli(tmp_path, photos):
    """``lic compress --iterations K --refine N`` with a progressive binary model writes the file the API gives."""
    from lic.cli import main

    img = photos["chelsea"].crop((0, 0, 70, 50))
    img.save(tmp_path / "c.png")
    out = tmp_path / "c.lic"
    assert main(["compress", str(tmp_path / "c.png"), "-o", str(out), "--model", "toderici2017-rnn", "--iterations",
                 "2", "--refine", "3"]) == 0
    assert out.read_bytes() == lic.compress(img, model="toderici2017-rnn", iterations=2, refine=3)
    m = zoo.load_model("toderici2017-rnn")  # the progress bar's total: steps x iterations x tiles
    assert lic.ratecontrol.refine_steps(m, 50, 70, 3, 2, per_quality=False) == 3 * 2 * 1
    assert lic.ratecontrol.refine_steps(m, 50, 70, 3) == 3 * 16 * 1  # rate control codes all 16 iterations


@pytest.mark.parametrize("name", ["toderici2017-rnn", "toderici2017-rnn-msssim"])
def test_binary_codec_search_on_tiny_images(photos, name):
    """Images thinner than one 16 x 16 block (and than SSIM's window) are searched too, and decode exactly."""
    for size in ((1, 1), (40, 3), (17, 33)):
        img = photos["astronaut"].crop((0, 0, *size))
        enc = codec.encode(img, model=name, quality=2, reconstruct=True, refine=2)
        assert np.array_equal(np.asarray(codec.decode(enc.data)), np.asarray(enc.reconstruction))


def test_the_searchs_bit_count_is_the_coders(one_thread):
    """The exact cost the search compares candidates by counts each iteration's bits as the coder's tables do."""
    m = zoo.load_model("toderici2017-rnn")
    cm = m.context
    gen = torch.Generator().manual_seed(0)
    bits = torch.where(torch.rand(5, cm.channels, 3, 7, generator=gen) < 0.7, 1, -1)
    _, ideal = cm.encode(bits)
    buckets = cm._buckets(3, 7)
    for t in range(5):
        assert cm.iteration_table_bits(buckets, t, bits[t]) == ideal[t]
        buckets.add_iteration(t, bits[t])
