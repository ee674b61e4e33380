"""The evaluation suite: metrics, codecs, resumable runs, missing codecs, rd/compare/report, CLI errors.

CPU only, tiny images (generated or cropped from scikit-image's samples), no Kodak needed.
"""

import csv
import json
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lic.bench import codecs as registry
from lic.bench import measure as measure_mod
from lic.bench import runner
from lic.errors import InputError

skdata = pytest.importorskip("skimage.data")


# --- helpers ---------------------------------------------------------------------------------------


def _noisy(a, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(a.astype(float) + rng.normal(0, sigma, a.shape), 0, 255).round().astype(np.uint8)


@pytest.fixture()
def image_dir(tmp_path):
    """Two small RGB photos plus one RGBA and one grayscale image (converted to RGB by the bench)."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(skdata.astronaut()[100:164, 150:246]).save(d / "a.png")  # 96×64
    Image.fromarray(skdata.chelsea()[50:98, 100:164]).convert("RGBA").save(d / "b.png")  # 64×48 RGBA
    Image.fromarray(skdata.camera()[200:248, 200:264]).save(d / "c.png")  # grayscale
    (d / "notes.txt").write_text("not an image")
    return d


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- metrics -----------------------------------------------------------------------------------------


def test_psnr_agrees_with_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio

    a = skdata.astronaut()[:200, :240]
    b = _noisy(a, 6)
    q = measure_mod.quality(a, b)
    assert q["psnr"] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)


def test_ycbcr_psnr_agrees_with_pillows_jfif_planes():
    from PIL import Image

    from lic import metrics

    a = skdata.astronaut()[:200, :240]
    b = _noisy(a, 6)
    planes = [np.asarray(Image.fromarray(x).convert("YCbCr")).astype(np.float64) for x in (a, b)]
    ours = metrics.psnr_ycbcr(a, b)
    for i in range(3):  # Pillow rounds each plane to 8 bits, ours does not: within 0.15 dB at σ = 6
        ref = 10 * np.log10(255.0 ** 2 / np.mean((planes[0][..., i] - planes[1][..., i]) ** 2))
        assert ours[i] == pytest.approx(ref, abs=0.15)


def test_chroma_ratio_measures_how_much_colour_is_kept():
    from lic import metrics

    a = skdata.astronaut()[:200, :240]
    y = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    grey = np.repeat(np.round(y)[..., None], 3, axis=2).astype(np.uint8)
    half = np.clip(np.round((a + y[..., None]) / 2), 0, 255).astype(np.uint8)  # chroma halved, luma kept
    assert metrics.chroma_ratio(a, a) == 1.0
    assert metrics.chroma_ratio(a, grey) < 0.01
    assert metrics.chroma_ratio(a, half) == pytest.approx(0.5, abs=0.01)
    assert np.isnan(metrics.chroma_ratio(grey, a))
    assert metrics.psnr_ycbcr(a, a) == (np.inf, np.inf, np.inf)
    assert metrics.psnr_ycbcr(a, grey)[0] > 50  # the luma survives greying (up to rounding)
    # the batch form (float tensors in [0, 1], as lic train logs it) agrees with the image form
    t = lambda img: torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert metrics.chroma_ratio_batch(t(a), t(half)) == pytest.approx(metrics.chroma_ratio(a, half), rel=1e-5)


def _ms_ssim_reference(a, b):
    """Independent MS-SSIM (Wang et al. 2003) with scipy: 11-tap Gaussian σ=1.5, 'valid' filtering,
    5 scales, 2×2 average pooling (zero-padded on odd sides), per channel then averaged."""
    from scipy.ndimage import correlate1d

    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(m):
        return correlate1d(correlate1d(m, g, axis=0, mode="constant")[5:-5], g, axis=1, mode="constant")[:, 5:-5]

    def pool(m):
        h, w = m.shape
        m = np.pad(m, ((h % 2, h % 2), (w % 2, w % 2)))
        h2, w2 = m.shape[0] // 2, m.shape[1] // 2
        return m[: 2 * h2, : 2 * w2].reshape(h2, 2, w2, 2).mean(axis=(1, 3))

    vals = []
    for ch in range(3):
        x1, x2 = a[..., ch].astype(float), b[..., ch].astype(float)
        prod = 1.0
        for level in range(5):
            mu1, mu2 = blur(x1), blur(x2)
            s11 = blur(x1 * x1) - mu1**2
            s22 = blur(x2 * x2) - mu2**2
            s12 = blur(x1 * x2) - mu1 * mu2
            cs = (2 * s12 + c2) / (s11 + s22 + c2)
            if level < 4:
                prod *= max(cs.mean(), 0) ** weights[level]
                x1, x2 = pool(x1), pool(x2)
            else:
                ssim = ((2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1)) * cs
                prod *= max(ssim.mean(), 0) ** weights[level]
        vals.append(prod)
    return float(np.mean(vals))


def test_ms_ssim_identity_and_independent_value():
    a = skdata.coffee()[100:277, 150:351]  # 177×201: odd sides exercise the padding
    assert measure_mod.quality(a, a)["ms_ssim"] == pytest.approx(1.0, abs=1e-6)
    b = _noisy(a, 10, seed=3)
    q = measure_mod.quality(a, b)
    ref = _ms_ssim_reference(a, b)
    assert 0.8 < ref < 0.999
    assert q["ms_ssim"] == pytest.approx(ref, abs=2e-4)
    assert q["ms_ssim_db"] == pytest.approx(-10 * math.log10(1 - q["ms_ssim"]))
    # undefined below 161 px, reported as NaN rather than a made-up number
    small = measure_mod.quality(a[:100, :100], b[:100, :100])
    assert math.isnan(small["ms_ssim"]) and math.isnan(small["ms_ssim_db"])


def test_psnr_hvs_matches_the_packages_cpp_backend_and_handles_odd_sizes():
    pytest.importorskip("psnr_hvsm")
    a = skdata.astronaut()[:131, :203]  # not multiples of 8: cropped to 128×200 for the metric
    b = _noisy(a, 5)
    hvs, hvsm = measure_mod.psnr_hvs(a, b)
    assert 25 < hvs < hvsm < 80
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        import psnr_hvsm
    if "cpp" in psnr_hvsm.BACKENDS:
        bt601ycbcr, _ = measure_mod._import_psnr_hvsm()
        ya, yb = bt601ycbcr(a[:128, :200])[0], bt601ycbcr(b[:128, :200])[0]
        ref = psnr_hvsm.BACKENDS["cpp"]["psnr_hvs_hvsm"](ya, yb)
        assert (hvs, hvsm) == pytest.approx(tuple(float(v) for v in ref), abs=1e-6)


# --- codecs ----------------------------------------------------------------------------------------------


def test_every_available_codec_round_trips_and_counts_real_bytes():
    img = Image.fromarray(skdata.astronaut()[:48, :64])
    codecs, skipped = registry.resolve(registry.split_specs("classical"))
    assert {c.name for c in codecs} | {s.split(":")[0] for s in skipped} == set(registry.CLASSICAL)
    for c in codecs:
        data = c.encode(img, c.settings[2])
        out = c.decode(data)
        assert out.size == img.size and out.mode == "RGB", c.name
        row = measure_mod.measure(c, c.settings[2], img, "x")
        assert row["bytes"] > 0 and row["psnr"] > 15, c.name
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (64 * 48))


def test_settings_override_and_bad_settings():
    assert registry.get_codec("jpeg@q10/q40").settings == ("q10", "q40")
    with pytest.raises(InputError, match="bad setting"):
        registry.get_codec("jpeg@x10")
    with pytest.raises(InputError, match="must be in"):
        registry.get_codec("webp@q101")
    with pytest.raises(InputError, match="unknown codec"):
        registry.get_codec("mp3")
    assert registry.get_codec("jpeg@q30/q30").settings == ("q30",)  # a setting given twice is measured once
    with pytest.raises(InputError, match="names no setting after '@'"):
        registry.get_codec("jpeg@")
    with pytest.raises(InputError, match="empty codec name"):
        registry.split_specs("jpeg,,webp")


@pytest.fixture()
def no_jxl(monkeypatch):
    """Simulate pillow-jxl-plugin not being installed."""
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)  # makes `import pillow_jxl` raise ImportError
    registry._import_jxl.cache_clear()
    yield
    registry._import_jxl.cache_clear()


def test_missing_library_is_reported_not_crashed_on(no_jxl, image_dir, tmp_path):
    codecs, skipped = registry.resolve(["jpeg@q50", "jxl"])
    assert [c.name for c in codecs] == ["jpeg"]
    assert skipped == ["jxl: skipped, pillow-jxl-plugin not installed (pip install pillow-jxl-plugin)"]
    lines = []
    out = runner.run_bench(image_dir, ["jpeg@q50", "jxl"], tmp_path / "res", progress=False, log=lines.append)
    assert out.measured == 3 and out.skipped_codecs == skipped and lines[0] == skipped[0]
    assert json.loads((tmp_path / "res" / "summary.json").read_text())["meta"]["skipped"] == skipped
    with pytest.raises(InputError, match="no codec can run"):
        runner.run_bench(image_dir, ["jxl"], tmp_path / "res2", progress=False, log=lines.append)


# --- the runner ------------------------------------------------------------------------------------------


def test_bench_writes_csv_and_summary_and_resumes_without_remeasuring(image_dir, tmp_path, monkeypatch):
    calls = []
    real = runner.measure
    monkeypatch.setattr(runner, "measure", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    out = tmp_path / "res"

    first = runner.run_bench(image_dir, ["jpeg@q20/q60"], out, limit=2, progress=False, log=lambda m: None)
    assert (first.measured, first.already_done, len(calls)) == (4, 0, 4)
    csv_path = out / "per_image.csv"
    rows = _rows(csv_path)
    assert len(rows) == 4 and rows[0].keys() == set(measure_mod.FIELDS)
    assert {r["image"] for r in rows} == {"a.png", "b.png"}  # --limit 2, sorted, non-images ignored
    stamp = csv_path.stat().st_mtime_ns

    again = runner.run_bench(image_dir, ["jpeg@q20/q60"], out, limit=2, progress=False, log=lambda m: None)
    assert (again.measured, again.already_done, len(calls)) == (0, 4, 4)
    assert len(_rows(csv_path)) == 4 and csv_path.stat().st_mtime_ns == stamp

    # all three images now: only the new one is measured; the grayscale one became RGB
    more = runner.run_bench(image_dir, ["jpeg@q20/q60"], out, progress=False, log=lambda m: None)
    assert (more.measured, more.already_done, len(calls)) == (2, 4, 6)
    rows = _rows(csv_path)
    assert len(rows) == 6 and all(float(r["bpp"]) == pytest.approx(8 * int(r["bytes"]) / (int(r["width"]) * int(r["height"]))) for r in rows)

    summary = json.loads((out / "summary.json").read_text())
    pts = summary["codecs"]["jpeg"]
    assert [p["setting"] for p in pts] == ["q20", "q60"] and all(p["n"] == 3 for p in pts)
    q20 = [r for r in rows if r["setting"] == "q20"]
    assert pts[0]["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in q20]), rel=1e-6)
    assert pts[0]["ms_ssim"] is None  # images below 161 px: MS-SSIM undefined, not invented
    assert summary["meta"]["n_images"] == 3 and "jpeg" in summary["meta"]["codecs"]
    assert summary["meta"]["machine"] == measure_mod.machine()


@pytest.mark.slow
def test_parallel_jobs_give_the_same_bytes(image_dir, tmp_path):
    serial = runner.run_bench(image_dir, ["jpeg@q30", "webp@q30"], tmp_path / "s", progress=False, log=lambda m: None)
    par = runner.run_bench(image_dir, ["jpeg@q30", "webp@q30"], tmp_path / "p", jobs=2, progress=False,
                           log=lambda m: None)
    assert serial.measured == par.measured == 6 and not par.failures

    def key(rows):
        return sorted((r["image"], r["codec"], r["bytes"], r["psnr"]) for r in rows)

    assert key(_rows(tmp_path / "s" / "per_image.csv")) == key(_rows(tmp_path / "p" / "per_image.csv"))


def test_summary_lists_codecs_in_the_order_asked_not_the_order_measured(image_dir, tmp_path):
    """Tables and plots follow the --codecs order, whatever order the jobs finished or the CSV was rewritten in."""
    out = tmp_path / "res"
    quiet = dict(limit=1, progress=False, log=lambda m: None)
    runner.run_bench(image_dir, ["webp@q30"], out, **quiet)
    runner.run_bench(image_dir, ["jpeg@q30", "webp@q30"], out, **quiet)  # jpeg's rows come after webp's in the CSV
    assert [r["codec"] for r in _rows(out / "per_image.csv")] == ["webp", "jpeg"]
    assert list(json.loads((out / "summary.json").read_text())["codecs"]) == ["jpeg", "webp"]
    runner.run_bench(image_dir, ["webp@q30"], out, **quiet)  # a run of one codec keeps the others, after it
    assert list(json.loads((out / "summary.json").read_text())["codecs"]) == ["webp", "jpeg"]


def test_lic_codec_adapter_runs_in_the_main_process(image_dir, tmp_path, monkeypatch):
    """``lic:MODEL`` uses lic.compress / lic.decompress / load_model(...).qualities (faked here)."""
    import io

    import lic

    class FakeModel:
        qualities = [1, 2, 3]

    def compress(img, model="m", quality=None):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=20 * quality)
        return buf.getvalue()

    def decompress(data, model=None):
        assert isinstance(model, FakeModel)  # the loaded model decodes (weights paths work too)
        return Image.open(io.BytesIO(data))

    monkeypatch.setattr(lic, "load_model", lambda name: FakeModel(), raising=False)
    monkeypatch.setattr(lic, "compress", compress, raising=False)
    monkeypatch.setattr(lic, "decompress", decompress, raising=False)
    codec = registry.get_codec("lic:fake")
    assert codec.settings == ("q1", "q2", "q3") and not codec.parallel_safe
    out = runner.run_bench(image_dir, ["lic:fake"], tmp_path / "res", jobs=2, progress=False, log=lambda m: None)
    assert out.measured == 9 and not out.failures
    assert {r["codec"] for r in _rows(tmp_path / "res" / "per_image.csv")} == {"lic:fake"}


def test_lic_codec_from_a_weights_file(image_dir, tmp_path, tiny_weights):
    """``lic:PATH`` with weights that are not shipped: files are encoded and decoded with those weights."""
    import lic
    from lic import metrics

    out = runner.run_bench(image_dir, [f"lic:{tiny_weights}"], tmp_path / "res", progress=False, log=lambda m: None)
    assert out.measured == 9 and not out.failures  # 3 images x 3 qualities of the tiny model
    rows = [r for r in _rows(tmp_path / "res" / "per_image.csv") if r["image"].startswith("a") and r["setting"] == "q2"]
    assert len(rows) == 1
    model = lic.load_model(str(tiny_weights))
    img = Image.open(image_dir / "a.png").convert("RGB")
    data = lic.compress(img, model=model, quality=2)
    dec = np.asarray(lic.decompress(data, model=model).convert("RGB"))
    assert float(rows[0]["bpp"]) == pytest.approx(8 * len(data) / (img.width * img.height), rel=1e-6)
    assert float(rows[0]["psnr"]) == pytest.approx(metrics.psnr(np.asarray(img), dec), abs=1e-4)


def _retrain(path):
    """Write other tiny weights over ``path``, as a training run rewrites model.safetensors in place."""
    from lic import zoo
    from lic.models import ScaleHyperprior

    torch.manual_seed(1)
    other = ScaleHyperprior(N=16, M=24, lambdas=(0.005, 0.02, 0.08)).eval()
    with torch.no_grad():
        other.g_s[-1].bias.fill_(0.5)  # decodes to mid-grey rather than black: other numbers
    zoo.save_weights(other, path, name="tiny-test")


def _stop_measuring_at(call: int, stop):
    """runner._measure_task that calls ``stop()`` (a kill, Ctrl-C) at its ``call``-th call, before measuring."""
    measure, calls = runner._measure_task, []

    def measure_until_stopped(*task):
        calls.append(task)
        if len(calls) == call:
            stop()
        return measure(*task)

    return measure_until_stopped


def test_retrained_weights_are_measured_again_not_mixed_with_old_rows(image_dir, tmp_path, tiny_weights):
    """Same codec name, new weights (a training run rewrites model.safetensors in place): the results folder's
    rows of the old weights are replaced, never resumed from; unchanged weights are resumed from."""
    import shutil

    from lic import zoo

    path = tmp_path / "model.safetensors"
    shutil.copy(tiny_weights, path)
    res, logs = tmp_path / "res", []
    first = runner.run_bench(image_dir, [f"lic:{path}"], res, progress=False, log=logs.append)
    old = {(r["image"], r["setting"]): r["psnr"] for r in _rows(res / "per_image.csv")}
    again = runner.run_bench(image_dir, [f"lic:{path}"], res, progress=False, log=logs.append)
    assert (first.measured, again.measured, again.already_done) == (9, 0, 9)

    _retrain(path)  # other weights, same file, same codec name
    third = runner.run_bench(image_dir, [f"lic:{path}"], res, progress=False, log=logs.append)
    assert (third.measured, third.already_done) == (9, 0)
    assert any("changed since its 9 rows" in m for m in logs)
    rows = _rows(res / "per_image.csv")
    assert len(rows) == 9  # the old rows are gone
    assert {(r["image"], r["setting"]): r["psnr"] for r in rows} != old  # measured with the new weights
    meta = json.loads((res / "summary.json").read_text())["meta"]
    assert meta["codec_versions"][f"lic:{path}"] == "weights " + zoo.load_model(str(path))._lic_digest.hex()


def test_a_run_killed_before_its_summary_resumes_under_the_weights_it_measured(image_dir, tmp_path, tiny_weights,
                                                                              monkeypatch):
    """A run killed outright (no summary.json written at exit) after some rows with new weights: the next run
    resumes those rows, since the versions were recorded before the first row was appended; it neither measures
    them again nor counts the summary's older version as theirs."""
    import shutil

    from lic import zoo

    path = tmp_path / "model.safetensors"
    shutil.copy(tiny_weights, path)
    res = tmp_path / "res"
    runner.run_bench(image_dir, [f"lic:{path}"], res, progress=False, log=lambda m: None)  # summary: old weights

    _retrain(path)

    def kill():
        raise KeyboardInterrupt  # stands for the kill

    with monkeypatch.context() as m:
        m.setattr(runner, "_measure_task", _stop_measuring_at(5, kill))
        m.setattr(runner, "write_summary", lambda *a, **k: None)  # a killed process writes no summary
        with pytest.raises(KeyboardInterrupt):
            runner.run_bench(image_dir, [f"lic:{path}"], res, progress=False, log=lambda m: None)
    partial = {(r["image"], r["setting"]): r["psnr"] for r in _rows(res / "per_image.csv")}
    assert len(partial) == 4

    logs = []
    resumed = runner.run_bench(image_dir, [f"lic:{path}"], res, progress=False, log=logs.append)
    assert (resumed.already_done, resumed.measured) == (4, 5)
    assert not any("changed since" in m for m in logs)
    rows = {(r["image"], r["setting"]): r["psnr"] for r in _rows(res / "per_image.csv")}
    assert len(rows) == 9 and all(rows[k] == v for k, v in partial.items())
    versions = json.loads((res / "codec_versions.json").read_text())
    assert versions[f"lic:{path}"] == "weights " + zoo.load_model(str(path))._lic_digest.hex()


@pytest.mark.skipif(sys.platform == "win32", reason="os.kill with SIGTERM ends the process on Windows")
def test_kill_stops_lic_bench_like_ctrl_c_with_its_summary_written(image_dir, tmp_path, tiny_weights, monkeypatch,
                                                                    capsys):
    """`kill PID` (SIGTERM) during `lic bench`: the rows measured so far are summarized, one line says so, and
    the exit status is the shell's for SIGTERM (143); no traceback."""
    import os
    import signal

    from lic import cli

    monkeypatch.setattr(runner, "_measure_task", _stop_measuring_at(3, lambda: os.kill(os.getpid(), signal.SIGTERM)))
    before = signal.getsignal(signal.SIGTERM)
    res = tmp_path / "res"
    rc = cli.main(["bench", str(image_dir), "--codecs", f"lic:{tiny_weights}", "--out", str(res), "-q"])
    assert rc == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "lic: terminated"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is lic's only while a command runs
    summary = json.loads((res / "summary.json").read_text())
    assert len(_rows(res / "per_image.csv")) == 2
    assert sum(p["n"] for pts in summary["codecs"].values() for p in pts) == 2


# --- rd, compare, report ---------------------------------------------------------------------------------


@pytest.fixture()
def results(image_dir, tmp_path):
    out = tmp_path / "res"
    runner.run_bench(image_dir, ["jpeg@q10/q30/q50/q80", "webp@q10/q30/q50/q80"], out, progress=False,
                     log=lambda m: None)
    return out


def test_rd_table_plots_and_published_anchor(results, tmp_path):
    pytest.importorskip("matplotlib")
    from lic.bench.rd import run_rd

    published = tmp_path / "pub.csv"
    published.write_text(
        "codec,quality,bpp,psnr,ms_ssim\n"
        + "".join(f"paper-x,{i},{b},{p},0.9\n" for i, (b, p) in enumerate([(0.2, 24), (0.5, 28), (1, 31), (2, 35), (4, 40)]))
    )
    logs = []
    files = run_rd(results, anchor="paper", published=str(published), out=tmp_path / "rd", log=logs.append)
    names = {f.name for f in files}
    assert {"bdrate.csv", "bdrate.md", "rd_psnr.png", "rd_psnr.svg", "rd_psnrhvs.png"} <= names
    rows = _rows(tmp_path / "rd" / "bdrate.csv")
    assert [r["codec"] for r in rows] == ["paper-x", "jpeg", "webp"]
    assert float(rows[0]["bd_rate_pchip_pct"]) == 0.0 and rows[0]["note"] == "anchor"
    assert all(math.isfinite(float(r["bd_rate_cubic_pct"])) and float(r["metric_lo"]) < float(r["metric_hi"]) for r in rows)
    assert "Anchor: paper-x" in (tmp_path / "rd" / "bdrate.md").read_text()
    with pytest.raises(InputError, match=r"--only zzz\* matches no codec \(there are: "):  # a typo is said, not a bare table
        run_rd(results, only="zzz*", out=tmp_path / "rd2", log=logs.append)


def test_compare_picks_the_closest_bpp_and_draws(tmp_path):
    pytest.importorskip("matplotlib")
    from lic.bench.compare import closest, default_crop, run_compare

    path = tmp_path / "astro.png"
    Image.fromarray(skdata.astronaut()[::4, ::4]).save(path)  # 128×128
    img = Image.open(path).convert("RGB")
    pick = closest(registry.get_codec("jpeg"), img, 1.0)
    for q in (pick.setting, "q1", "q100"):
        other = len(registry.get_codec("jpeg").encode(img, q)) * 8 / 128**2
        assert abs(pick.bpp - 1.0) <= abs(other - 1.0) + 1e-12
    fair = closest(registry.get_codec("jpeg"), img, pick.bpp + 1e-9, at_least=True)  # never fewer bits
    assert fair.bpp > pick.bpp
    q = int(fair.setting[1:])
    assert len(registry.get_codec("jpeg").encode(img, f"q{q - 1}")) * 8 / 128**2 <= pick.bpp + 1e-9
    x, y, w, h = default_crop(img)
    assert (w, h) == (32, 32) and 0 <= x <= 96 and 0 <= y <= 96
    out = run_compare(path, 0.8, ["jpeg", "webp"], tmp_path / "fig.png", crop="10,20,40,30", log=lambda m: None)
    assert Image.open(out).size[0] > 300
    # settings picked in the spec are the only candidates: of q10 (0.94 bpp here) and q20 (1.31), q10; the
    # search over every quality picks another
    assert closest(registry.get_codec("jpeg@q10/q20"), img, 1.0).setting == "q10" != pick.setting


def test_report_is_one_self_contained_html_file(results, tmp_path):
    pytest.importorskip("matplotlib")
    from lic.bench.report import run_report

    out = run_report(results, tmp_path / "r.html", log=lambda m: None)
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "data:image/svg+xml;base64," in text
    assert "data:image/jpeg;base64," in text  # thumbnails of the originals
    assert "BD-rate" in text and "a.png" in text
    assert "http://" not in text.replace("http://www.w3.org", "") and "<script" not in text


# --- CLI ---------------------------------------------------------------------------------------------------


def _cli(argv, capsys):
    from lic.cli import main

    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["bench", "/no/such/dir", "--out", "{tmp}/r"], "not a directory"),
        (["bench", "{imgs}", "--codecs", "jpeg,mp3", "--out", "{tmp}/r"], "unknown codec 'mp3'"),
        (["bench", "{imgs}", "--codecs", "jpeg@q500", "--out", "{tmp}/r"], "bad setting"),
        (["bench", "{imgs}"], "--out"),
        (["rd", "{tmp}"], "no summary.json"),
        (["report", "/no/such/dir"], "not a directory"),
        (["compare", "/no/such.png", "--bpp", "0.5", "-o", "{tmp}/f.png"], "no such file"),
        (["compare", "{imgs}/a.png", "--bpp", "0.5", "--crop", "1,2", "-o", "{tmp}/f.png"], "bad --crop"),
        (["compare", "{imgs}", "--bpp", "0.5", "-o", "{tmp}/f.png"], "is a folder; lic compare takes one image"),
        # inputs that are not what they should be: binary, or JSON of another shape
        (["rd", "{tmp}/listjson"], "not a lic bench summary (TypeError"),
        (["report", "{tmp}/listjson"], "not a lic bench summary (TypeError"),
        (["rd", "{tmp}/nocodecs"], "no codec measured yet"),
        (["report", "{tmp}/nocodecs"], "no codec measured yet"),
        (["rd", "{tmp}/nocodecs", "--published", "{imgs}/a.png"], "not a CSV file of RD points"),
        (["bench", "{imgs}", "--codecs", "jpeg", "--out", "{tmp}/garbage"], "not a lic bench results table"),
        # outputs: a file where a folder belongs, a report that is not HTML
        (["rd", "{tmp}/nocodecs", "--out", "{imgs}/a.png"], "--out must be a folder"),
        (["report", "{tmp}/listjson", "-o", "{tmp}/r.pdf"], "the report is an HTML file"),
    ],
)
def test_cli_errors_are_one_line(argv, message, image_dir, tmp_path, capsys):
    (tmp_path / "listjson").mkdir()
    (tmp_path / "listjson" / "summary.json").write_text("[]")
    (tmp_path / "nocodecs").mkdir()
    (tmp_path / "nocodecs" / "summary.json").write_text('{"codecs": {}, "meta": {}}')
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "per_image.csv").write_bytes(bytes(range(256)) * 2)
    argv = [a.format(tmp=tmp_path, imgs=image_dir) for a in argv]
    rc, out, err = _cli(argv, capsys)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lic: error:") and message in lines[0], err


def test_cli_bench_rd_report_happy_path(image_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    res = tmp_path / "res"
    rc, out, err = _cli(["bench", str(image_dir), "--codecs", "jpeg@q10/q30/q50/q80,webp@q10/q30/q50/q80",
                         "--out", str(res), "-q"], capsys)
    assert rc == 0, err
    rc, out, err = _cli(["rd", str(res), "--anchor", "webp", "--metric", "psnrhvs"], capsys)
    assert rc == 0, err
    assert "BD-rate" in out and (res / "rd" / "bdrate.md").exists()
    rc, out, err = _cli(["report", str(res)], capsys)
    assert rc == 0 and (res / "report.html").exists()
    rc, out, err = _cli(["report", str(res)], capsys)  # exists: refused without --force
    assert rc != 0 and "--force" in err


# --- external binaries (faked: checks the temp-file and YUV/Y4M plumbing, not the real encoders) ---------


def _fake_tool(folder, name, body):
    p = folder / name
    p.write_text(f"#!{sys.executable}\nimport sys, shutil\nargs = sys.argv[1:]\n{body}\n")
    p.chmod(0o755)


def test_external_codecs_through_fake_binaries(tmp_path, monkeypatch):
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # "bitstreams" that are just the input, so the round trip must be exact (BPG) / 4:2:0-exact (VVC)
    _fake_tool(bin_dir, "bpgenc", "shutil.copy(args[-1], args[args.index('-o') + 1])")
    _fake_tool(bin_dir, "bpgdec", "shutil.copy(args[-1], args[args.index('-o') + 1])")
    _fake_tool(bin_dir, "vvencFFapp", "shutil.copy(args[args.index('--InputFile') + 1], "
                                      "args[args.index('--BitstreamFile') + 1])")
    _fake_tool(bin_dir, "vvdecapp", "w, h = 66, 48\n"
                                    "data = open(args[args.index('-b') + 1], 'rb').read()\n"
                                    "open(args[args.index('-o') + 1], 'wb').write("
                                    "b'YUV4MPEG2 W%d H%d F25:1 Ip A1:1 C420jpeg\\nFRAME\\n' % (w, h) + data)")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    img = Image.fromarray(skdata.astronaut()[::4, ::4][:48, :66])
    bpg = registry.get_codec("bpg444@qp30")
    assert bpg.missing() is None
    assert np.array_equal(np.asarray(bpg.decode(bpg.encode(img, "qp30"))), np.asarray(img))
    vtm = registry.get_codec("vtm")
    assert vtm.missing() is None
    data = vtm.encode(img, "qp32")
    assert len(data) == 66 * 48 * 3 // 2  # raw 8-bit 4:2:0 frame
    out = vtm.decode(data)
    assert out.size == img.size
    from lic import metrics

    assert metrics.psnr(np.asarray(img), np.asarray(out)) > 25  # only colour conversion + chroma subsampling


def test_machine_names_cores_and_torch_kernels():
    """Results files record the CPU precisely enough to explain a timing: cores and the ISA torch uses."""
    import os

    desc = measure_mod.machine()
    assert f"{os.cpu_count()} cores" in desc
    assert f"torch CPU kernels {torch.backends.cpu.get_cpu_capability()}" in desc
    assert desc.split(",")[0].strip()  # a CPU name comes first, never empty


def test_bench_on_a_users_folder_sub_folders_odd_names_lossless_exif_and_dark_16_bit(tmp_path):
    """Sub-folders are searched and rows named by their path in the folder (a name that is not UTF-8 with \\x
    escapes); an image a codec returns unchanged (infinite PSNR) is left out of the mean PSNR and counted, so the
    summary keeps a PSNR; images are read as shown (EXIF orientation) and 16-bit ones scaled by their bit depth
    (a dark one stays dark); a setting given twice is measured once."""
    import os

    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(skdata.astronaut()[100:164, 150:214]).save(d / "a.png")
    Image.fromarray(skdata.chelsea()[50:82, 100:132]).save(d / "sub" / "nested.png")
    Image.new("RGB", (32, 32), (128, 128, 128)).save(d / "flat.png")
    im = Image.fromarray(skdata.astronaut()[:24, :40])
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned: 24 wide, 40 high
    im.save(d / "turned.jpg", exif=exif)
    Image.fromarray((np.arange(32 * 32).reshape(32, 32) % 200).astype(np.uint16)).save(d / "dark16.png")
    names = {"a.png", "sub/nested.png", "flat.png", "turned.jpg", "dark16.png"}
    try:
        Image.new("RGB", (16, 16), (10, 200, 30)).save(d / os.fsdecode(b"odd\xffname.png"))
        names.add("odd\\xffname.png")
    except (OSError, UnicodeError):  # a file system that takes only UTF-8 names
        pass
    assert np.asarray(measure_mod.load_rgb(d / "dark16.png")).max() == 1  # 199 / 257, not 199
    runner.run_bench(d, ["jpeg@q50/q50"], tmp_path / "out", progress=False, log=lambda s: None)
    rows = _rows(tmp_path / "out" / "per_image.csv")
    assert {r["image"] for r in rows} == names and len(rows) == len(names)  # q50 once
    turned = next(r for r in rows if r["image"] == "turned.jpg")
    assert (int(turned["width"]), int(turned["height"])) == (24, 40)
    assert math.isinf(float(next(r for r in rows if r["image"] == "flat.png")["psnr"]))  # flat grey: exact in JPEG
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    jpeg = summary["codecs"]["jpeg"][0]
    finite = [float(r["psnr"]) for r in rows if math.isfinite(float(r["psnr"]))]
    assert jpeg["psnr"] == pytest.approx(np.mean(finite)) and jpeg["lossless_images"] == len(rows) - len(finite) >= 1


def test_scalable_kodak_names_measured_weights_by_their_model(load_tool):
    """benchmarks/scalable_kodak.py labels each measured curve with the model its weights record: an MS-SSIM
    fine-tune's comparisons must not read as the shipped MSE model's."""
    mod = load_tool("scalable_kodak", folder="benchmarks")

    def result(model, shift):
        layers = {str(k): {"bpp": 0.1 * k, "psnr": 24.0 + 2 * k + shift, "ms_ssim": 0.9 + 0.02 * k + shift / 100}
                  for k in range(1, 5)}
        return {"model": model, "layers": layers, "weights": f"{model}.safetensors"}

    comp = mod.comparisons({"hyper": result("su2020-rnn-hyperprior-msssim", 0.5)}, None,
                           previous=result("su2020-rnn-hyperprior", 0.0))
    tests = {r["test"] for r in comp["bd_rate"]}
    assert tests == {"su2020-rnn-hyperprior-msssim (ours)"}
    prev = next(r for r in comp["bd_rate"] if r["anchor"].startswith("previous weights"))
    assert prev["psnr"]["bd_rate_pct"] < 0  # 0.5 dB better everywhere: fewer bits at equal PSNR
    unnamed = mod.comparisons({"hyper": {"layers": result("x", 0)["layers"]}}, None,
                              previous=result("su2020-rnn-hyperprior", 0.0))  # no model recorded: the default name
    assert {r["test"] for r in unnamed["bd_rate"]} == {"su2020-rnn-hyperprior (ours)"}


def test_recurrent_bdrate_against_a_codec_measured_here(results, tmp_path, load_tool, capsys):
    """benchmarks/recurrent_bdrate.py --measured NAME: a progressive model's iteration points against a codec of a
    lic bench results folder, point by point (our quality minus the codec's at our bpp)."""
    from lic.bench.results import load_results

    mod = load_tool("recurrent_bdrate", folder="benchmarks")
    jpeg = load_results(results)[0]["jpeg"]
    bpp, psnr = jpeg.xy("psnr")
    assert len(bpp) == 4 and not jpeg.has("ms_ssim")  # images too small for MS-SSIM
    ours = {"iterations": {str(k + 1): {"bpp": float(b), "psnr": float(p) + 0.5, "ms_ssim": 0.9 + 0.01 * k}
                           for k, (b, p) in enumerate(zip(bpp, psnr))}}
    src = tmp_path / "ours.json"
    src.write_text(json.dumps(ours))
    out = tmp_path / "bd.json"
    assert mod.main(["--measured", "jpeg", "--results", str(results), str(src), "--json", str(out)]) == 0
    row = json.loads(out.read_text())["results"][str(src)]
    assert [p["bpp"] for p in row["psnr"]["per_point"]] == pytest.approx(list(bpp))
    assert [p["diff"] for p in row["psnr"]["per_point"]] == pytest.approx([0.5] * 4)
    assert row["psnr"]["bd_rate_pct"] < 0  # 0.5 dB better at every rate: fewer bits at equal PSNR
    assert row["ms_ssim_db"]["bd_rate_pct"] is None and "fewer than 2 ms_ssim_db points" in row["ms_ssim_db"]["why"]
    assert "+0.50 dB" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"no codec 'jpg' in .* \(it has: jpeg, webp\)"):
        mod.main(["--measured", "jpg", "--results", str(results), str(src)])
