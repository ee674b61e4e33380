"""Coding with a model on a GPU: the networks on the model's device, the coding on the CPU.

CI has no GPU, so the device is simulated (tests/fakedevice.py): it raises wherever CUDA would when a tensor
on one device meets one on the other or a device tensor reaches numpy, which is how coding with a model on a
GPU failed before (a context model's integer network on the CPU given weights on the GPU; a table fingerprint
compared across devices).  The arithmetic is still the CPU's, so here the files and pixels must equal the
CPU's exactly; on a real GPU only float rounding may differ (benchmarks/device_speed.py measures it there).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakedevice import DeviceMismatch, FakeDevice

from lic import zoo
from lic.models import ScaleHyperprior

SHIPPED = ["bmshj2018-hyperprior", "toderici2017-rnn", "su2020-rnn-hyperprior", "attention-hyperprior"]


@pytest.fixture(scope="module")
def image():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 24, 40, generator=g)
    return torch.nn.functional.interpolate(x, size=(40, 72), mode="bilinear", align_corners=False)


def _fresh(name):
    """A model object of its own (the zoo's cached one is shared with other tests)."""
    return zoo.load_weights(zoo.shipped()[name])


def test_the_simulation_raises_where_cuda_would():
    conv = torch.nn.Conv2d(3, 4, 3).requires_grad_(False)
    with FakeDevice():
        conv.to("cuda")
        assert conv.weight.device.type == "cuda"
        with pytest.raises(DeviceMismatch):
            conv(torch.zeros(1, 3, 8, 8))  # CPU input, device weights
        y = conv(torch.zeros(1, 3, 8, 8).cuda())
        assert y.device.type == "cuda"
        with pytest.raises(DeviceMismatch):
            y.numpy()
        with pytest.raises(DeviceMismatch):
            torch.equal(y, y.cpu())
        assert y.cpu().device.type == "cpu" and y.cpu().numpy().shape == (1, 4, 6, 6)
        assert (y + torch.tensor(1.0)).device.type == "cuda"  # a CPU scalar may join, as in CUDA
        assert y.double().device.type == "cuda" and y.to("cuda", torch.float64).device.type == "cuda"


@pytest.mark.parametrize("name", SHIPPED)
def test_coding_with_the_model_on_a_device(name, image):
    m = _fresh(name)
    q = m.qualities[1]
    ref = m.compress(image, q, reconstruct=True)
    with FakeDevice():
        m.to("cuda")
        assert next(m.parameters()).device.type == "cuda"
        assert m.tables_current()
        comp = m.compress(image, q, reconstruct=True)
        y = m.decompress(comp.chunks, *image.shape[-2:], q, comp.params)
        assert y.device.type == "cpu" and comp.x_hat.device.type == "cpu"
    assert comp.chunks == ref.chunks
    assert torch.equal(y, comp.x_hat) and torch.equal(y, ref.x_hat)


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior", "su2020-rnn-hyperprior"])
def test_exact_files_and_refinement_on_a_device(name, image):
    m = _fresh(name)
    q = m.qualities[1]
    ref = m.compress(image, q, reconstruct=True, exact=True, refine=2)
    with FakeDevice():
        m.to("cuda")
        comp = m.compress(image.cuda(), q, reconstruct=True, exact=True, refine=2)
        y = m.decompress(comp.chunks, *image.shape[-2:], q, comp.params)
    assert comp.chunks == ref.chunks and torch.equal(y, ref.x_hat)


def test_tables_built_on_a_device_equal_those_built_on_the_cpu(image):
    """A model without tables (fresh weights) builds them itself in compress(), wherever it is."""
    torch.manual_seed(3)
    a = ScaleHyperprior(N=16, M=24).eval()
    b = ScaleHyperprior(N=16, M=24).eval()
    b.load_state_dict(a.state_dict())
    ref = a.compress(image, 2)
    with FakeDevice():
        b.to("cuda")
        assert not b.tables_current()
        comp = b.compress(image, 2)
        assert b.tables_current()
    assert comp.chunks == ref.chunks
    b.cpu()
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_api_and_cli_on_a_device(tmp_path, monkeypatch, image):
    """``lic.load_model(name, device=...)`` and ``--device``: the same file and pixels as on the CPU (simulated)."""
    import lic
    from lic.cli import main

    rgb = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(rgb).save(src)
    assert main(["compress", str(src), "-o", str(tmp_path / "cpu.lic"), "--quiet"]) == 0
    assert main(["decompress", str(tmp_path / "cpu.lic"), "-o", str(tmp_path / "cpu.png"), "--quiet"]) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    zoo._load_cached.cache_clear()
    try:
        with FakeDevice():
            m = lic.load_model(device="cuda")
            assert next(m.parameters()).device.type == "cuda"
            assert lic.load_model(device="cuda") is m and lic.load_model() is not m
            data = lic.compress(Image.fromarray(rgb), model=m)
            assert main(["compress", str(src), "-o", str(tmp_path / "dev.lic"), "--device", "cuda", "--quiet"]) == 0
            assert main(["decompress", str(tmp_path / "dev.lic"), "-o", str(tmp_path / "dev.png"), "--device",
                         "cuda", "--quiet"]) == 0
            img = lic.decompress(data, device="cuda")
            assert main(["eval", str(tmp_path), "--device", "cuda", "--qualities", "2", "--out", str(tmp_path / "ev"),
                         "--quiet"]) == 0
    finally:
        zoo._load_cached.cache_clear()  # no model "on the device" outlives the simulation
    cpu = (tmp_path / "cpu.lic").read_bytes()
    assert data == cpu and (tmp_path / "dev.lic").read_bytes() == cpu
    assert np.array_equal(np.asarray(Image.open(tmp_path / "dev.png")), np.asarray(Image.open(tmp_path / "cpu.png")))
    assert np.array_equal(np.asarray(img), np.asarray(Image.open(tmp_path / "cpu.png")))
    import json

    ev = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert ev["images"] >= 1 and ev["qualities"]["2"]["bpp"] > 0


@pytest.mark.parametrize("command", [["compress", "IN", "-o", "OUT.lic"], ["decompress", "LIC", "-o", "OUT.png"]])
@pytest.mark.parametrize("device", ["cuda:7", "tpu"])
def test_an_unusable_device_is_one_line_and_no_output(tmp_path, capsys, command, device, monkeypatch):
    from PIL import Image

    from lic.cli import main

    src = tmp_path / "in.png"
    Image.new("RGB", (20, 12), (90, 140, 30)).save(src)
    lic_file = tmp_path / "in.lic"
    assert main(["compress", str(src), "-o", str(lic_file), "--quiet"]) == 0
    capsys.readouterr()
    args = [{"IN": str(src), "LIC": str(lic_file)}.get(a, a) for a in command]
    args = [str(tmp_path / a) if a.startswith("OUT") else a for a in args]
    rc = main(args + ["--device", device])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and device in err and "Traceback" not in err
    assert not (tmp_path / args[3]).exists()


@pytest.mark.parametrize("on_device", [False, True])
def test_the_bit_context_model_on_the_device_codes_the_same_bits(image, on_device, monkeypatch):
    """CONTEXT_ON_DEVICE (opt-in): the integer context network runs on the model's GPU; the buckets, and so the
    files, stay those of the CPU (exact integer sums; here the simulated device checks where each tensor is)."""
    from lic.entropy import binary

    m = _fresh("toderici2017-rnn")
    ref = m.compress(image, 4, reconstruct=True)
    monkeypatch.setattr(binary, "CONTEXT_ON_DEVICE", on_device)
    with FakeDevice() as fd:
        m.to("cuda")
        assert m.context.coding_device().type == ("cuda" if on_device else "cpu")
        before = fd.crossings
        comp = m.compress(image, 4, reconstruct=True)
        y = m.decompress(comp.chunks, *image.shape[-2:], 4, comp.params)
        y2 = m.decompress(comp.chunks[:2], *image.shape[-2:], 4, comp.params)
        moved = fd.crossings - before
    assert comp.chunks == ref.chunks and torch.equal(y, ref.x_hat)
    assert torch.equal(y2, ref.extra["x_hats"][1])
    assert moved > 0


@pytest.mark.parametrize("name, target", [("toderici2017-rnn", {"psnr": 24.0}), ("su2020-rnn-hyperprior", {"bpp": 2.5}),
                                          ("bmshj2018-hyperprior", {"bpp": 2.5})])
def test_rate_control_with_the_model_on_a_device(name, target, image):
    """--psnr / --bpp search decodes every candidate: the same choice and file as on the CPU."""
    import lic

    rgb = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ref = lic.compress(rgb, model=_fresh(name), **target)
    m = _fresh(name)
    with FakeDevice():
        m.to("cuda")
        data = lic.compress(rgb, model=m, **target)
        img = lic.decompress(data, model=m)
    assert data == ref
    assert np.array_equal(np.asarray(img), np.asarray(lic.decompress(ref)))
