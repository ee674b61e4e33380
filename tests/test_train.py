"""Training runs end to end on the CPU: steps, checkpoints, resume, DDP, shipped-format weights."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lic.cli import main


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("train")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).save(d / f"{name}.png")
    return d


ARGS = ["--batch", "2", "--crop", "64", "--workers", "0", "--channels", "8", "12", "--quiet", "--log-every", "1"]


def test_train_resume_and_export(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "3", *ARGS]) == 0
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in log)
    assert all(0 <= r["chroma"] < 5 for r in log)  # colour kept on the logged batch
    ck = torch.load(out / "ckpt.pt", weights_only=False)
    assert ck["step"] == 3
    # resume exactly from the checkpoint and go on to step 5
    capsys.readouterr()
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "5", "--resume",
                 str(out / "ckpt.pt"), *ARGS]) == 0
    # ARGS has --channels: said to be ignored, in one line, not silently; and nothing else is said
    err = [l for l in capsys.readouterr().err.splitlines() if l.startswith("lic:")]
    assert err == ["lic: warning: --config/--lambda/--channels ignored: --resume continues with the model "
                   "configuration stored in its checkpoint or weights"]
    assert torch.load(out / "ckpt.pt", weights_only=False)["step"] == 5
    # the exported weights are a working model
    import lic

    model = lic.load_model(str(out / "model.safetensors"))
    assert model.lic_name == "bmshj2018-hyperprior"
    img = Image.fromarray(np.asarray(Image.open(data_dir / "coffee.png"))[:70, :90])
    assert lic.decompress(lic.compress(img, model=model, quality=1), model=model).size == (90, 70)


def test_a_resumed_run_keeps_the_name_of_what_it_resumed(tmp_path, data_dir):
    """Weights shipped under their own name (e.g. toderici2017-rnn-msssim) continue under that name, from the
    weights and from the run's checkpoint, unless --name gives another."""
    from lic import zoo

    first = tmp_path / "first"
    assert main(["train", "--data", str(data_dir), "--out", str(first), "--steps", "1", "--name", "my-codec", *ARGS]) == 0
    assert zoo.read_metadata(first / "model.safetensors")["name"] == "my-codec"
    more = tmp_path / "more"
    assert main(["train", "--data", str(data_dir), "--out", str(more), "--steps", "1",
                 "--resume", str(first / "model.safetensors"), *ARGS]) == 0
    assert zoo.read_metadata(more / "model.safetensors")["name"] == "my-codec"
    assert main(["train", "--data", str(data_dir), "--out", str(more), "--steps", "2",
                 "--resume", str(more / "ckpt.pt"), *ARGS]) == 0
    assert zoo.read_metadata(more / "model.safetensors")["name"] == "my-codec"
    renamed = tmp_path / "renamed"
    assert main(["train", "--data", str(data_dir), "--out", str(renamed), "--steps", "1", "--name", "other",
                 "--resume", str(first / "model.safetensors"), *ARGS]) == 0
    assert zoo.read_metadata(renamed / "model.safetensors")["name"] == "other"


def test_train_with_final_evaluation(tmp_path, data_dir):
    out = tmp_path / "run"
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "1", "--eval-dir", str(data_dir),
                 "--eval-images", "1", *ARGS]) == 0
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["images"] == 1 and len(summary["qualities"]) == 6


def test_ddp_two_processes_gloo(tmp_path, data_dir):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "lic", "train", "--data", str(data_dir), "--out", str(out), "--steps", "2", "--device", "cpu", *ARGS]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (out / "model.safetensors").exists()
    assert torch.load(out / "ckpt.pt", weights_only=False)["step"] == 2


@pytest.mark.parametrize("name, key", [("bmshj2018-hyperprior", "latent.h_s.0.weight"),
                                       ("toderici2017-rnn", "context.layers.0.weight"),
                                       ("su2020-rnn-hyperprior", "hs_cell.conv_x.weight")])
def test_training_keeps_integer_coded_weights_storable(tmp_path, data_dir, name, key):
    """The coder runs some layers as integer copies that hold weights below ±8 (a hyperprior's h_s, the bit
    context model).  A run whose weights crossed that (toderici2017-rnn's context model did in a CPU round, and
    the run stopped at its next checkpoint export) goes on: training keeps them storable, exports, and codes."""
    import lic
    from lic.layers.integer import W_LIMIT

    out = tmp_path / "run"
    common = ["--data", str(data_dir), "--out", str(out), "--batch", "2", "--crop", "64", "--workers", "0", "--quiet"]
    assert main(["train", "--model", name, "--steps", "1", *common]) == 0
    ck = torch.load(out / "ckpt.pt", weights_only=False)
    ck["model"][key].view(-1)[:3] = torch.tensor([9.0, -8.0, 7.999])  # 7.999 is 8 in the fp16 of export
    torch.save(ck, out / "ckpt.pt")
    assert main(["train", "--steps", "2", "--resume", str(out / "ckpt.pt"), *common]) == 0
    model = lic.load_model(str(out / "model.safetensors"))
    layers = model.integer_coded_layers()
    assert any(layer.weight is dict(model.named_parameters())[key] for layer in layers)
    assert max(float(layer.weight.abs().max()) for layer in layers) <= W_LIMIT
    img = Image.fromarray(np.asarray(Image.open(data_dir / "coffee.png"))[:40, :56])
    assert lic.decompress(lic.compress(img, model=model, quality=1), model=model).size == (56, 40)


def test_bad_training_input(tmp_path, data_dir, capsys):
    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--steps", "1"]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--steps", "1"]) == 2
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2  # no budget
    assert not (tmp_path / "o").exists()
    (tmp_path / "afile").write_bytes(b"x")
    capsys.readouterr()
    assert main(["train", "--data", str(data_dir), "--out", str(tmp_path / "afile" / "o"), "--steps", "1"]) == 2
    assert capsys.readouterr().err.strip() == (f"lic: error: --out {tmp_path / 'afile' / 'o'}: cannot create folder "
                                               f"({tmp_path / 'afile'} is a file)")


def test_a_checkpoint_given_as_weights_and_an_unreadable_eval_dir_are_one_line(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "1", *ARGS]) == 0
    capsys.readouterr()
    assert main(["eval", str(data_dir), "--model", str(out / "ckpt.pt"), "--out", str(tmp_path / "ev"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().endswith(f"ckpt.pt is a training checkpoint: its weights are "
                                                    f"{out / 'model.safetensors'}")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "b.png").write_text("not an image")
    assert main(["train", "--data", str(data_dir), "--out", str(tmp_path / "r2"), "--steps", "1", "--eval-dir",
                 str(notes), *ARGS]) == 2  # refused before training, not after the whole budget
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"lic: error: --eval-dir: no readable images found in {notes}"
    assert not (tmp_path / "r2").exists()


def test_a_diverging_run_stops_in_one_line_and_leaves_nothing(tmp_path, data_dir, capsys):
    out = tmp_path / "run" / "sub"
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "3", "--lambda", "1e308",
                 *ARGS]) == 2
    assert capsys.readouterr().err.strip() == ("lic: error: training diverged at step 1 (the loss is not finite): "
                                               "lower --lr or λ and train again")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("signame, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_or_kill_saves_a_checkpoint_that_resumes(tmp_path, data_dir, signame, status):
    """The first Ctrl-C (SIGINT) or kill (SIGTERM: what `timeout` and job schedulers send first) ends the step
    under way, saves the checkpoint and the weights, and says how to go on (exit status 128 + the signal's
    number); DataLoader workers leave the signal to the main process."""
    import signal
    import time

    if sys.platform == "win32":
        pytest.skip("POSIX signals")

    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "lic", "train", "--data", str(data_dir), "--out", str(out),
                          "--minutes", "10", "--ckpt-minutes", "10", *ARGS[:4], "--workers", "1", *ARGS[6:]],
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not ((out / "log.jsonl").exists() and (out / "log.jsonl").read_text()):
        time.sleep(0.2)
    p.send_signal(getattr(signal, signame))
    err = p.communicate(timeout=120)[1]
    assert p.returncode == status and "Traceback" not in err, err
    step = torch.load(out / "ckpt.pt", weights_only=False)["step"]
    assert step >= 1 and (out / "model.safetensors").exists()
    assert err.strip().splitlines()[-1] == (f"lic: interrupted at step {step}: saved {out / 'ckpt.pt'} and "
                                            f"{out / 'model.safetensors'}; --resume {out / 'ckpt.pt'} continues the run")
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--resume", str(out / "ckpt.pt"), "--steps",
                 str(step + 1), *ARGS]) == 0
    assert torch.load(out / "ckpt.pt", weights_only=False)["step"] == step + 1


def test_training_data_as_it_is_shown_and_cheap_for_thin_images(tmp_path, monkeypatch):
    """Crops follow EXIF orientation (as lic compress reads a photo), and an image thinner than the crop is
    upscaled only in the square that is cut, not as a whole."""
    from lic.data import CropDataset

    a = np.zeros((32, 64, 3), np.uint8)
    a[:, :32] = (255, 0, 0)
    a[:, 32:] = (0, 0, 255)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned 90° clockwise: red on top, blue below
    (tmp_path / "exif").mkdir()
    im.save(tmp_path / "exif" / "e.png", exif=exif)
    crop = CropDataset(tmp_path / "exif", crop=32)[0]
    assert (crop[:, 0, :].T == torch.tensor([255, 0, 0])).all() and (crop[:, -1, :].T == torch.tensor([0, 0, 255])).all()
    (tmp_path / "thin").mkdir()
    Image.new("RGB", (20000, 2), (10, 20, 30)).save(tmp_path / "thin" / "t.png")
    seen = []
    real_resize = Image.Image.resize

    def resize(self, size, *args, **kwargs):
        seen.append(size)
        return real_resize(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)
    crop = CropDataset(tmp_path / "thin", crop=64)[0]
    assert crop.shape == (3, 64, 64) and (crop.flatten(1).T == torch.tensor([10, 20, 30])).all()
    assert seen == [(64, 64)]


def test_a_few_good_images_among_many_broken_ones_still_train(tmp_path, data_dir, capfd):
    """One image that decodes among many whose pixels do not: the run trains on it, names only the first few
    broken ones, and a worker never prints a traceback."""
    d = tmp_path / "mostly_broken"
    d.mkdir()
    Image.open(data_dir / "coffee.png").crop((0, 0, 96, 80)).save(d / "zz_good.png")
    raw = (data_dir / "chelsea.png").read_bytes()
    for i in range(40):
        (d / f"bad{i:02d}.png").write_bytes(raw[:len(raw) // 2])
    out = tmp_path / "run"
    assert main(["train", "--data", str(d), "--out", str(out), "--steps", "3", *ARGS[:4], "--workers", "1",
                 *ARGS[6:]]) == 0
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err.count("cannot be decoded") <= 2 * 3  # at most three named in the main process and in the worker
    assert torch.load(out / "ckpt.pt", weights_only=False)["step"] == 3


@pytest.mark.parametrize("option, message", [
    (["--steps", "0"], "--steps takes a whole number >= 1, got 0"),
    (["--steps", "1", "--minutes", "-1"], "--minutes takes a positive number, got -1"),
    (["--steps", "1", "--batch", "0"], "--batch takes a whole number >= 1, got 0"),
    (["--steps", "1", "--crop", "8"], "--crop takes a whole number >= 16, got 8"),
    (["--steps", "1", "--lr", "0"], "--lr takes a positive number, got 0"),
    (["--steps", "1", "--warmup", "0"], "--warmup takes a whole number >= 1, got 0"),
    (["--steps", "1", "--workers", "-1"], "--workers takes a whole number >= 0, got -1"),
    (["--steps", "1", "--lambda", "0.01", "-0.02"], "--lambda takes positive numbers, got 0.01 -0.02"),
    (["--steps", "1", "--eval-dir", "nowhere"], "--eval-dir: no such folder: nowhere"),
    (["--steps", "1", "--resume", "nowhere.pt"], "checkpoint not found: nowhere.pt"),
    (["--steps", "1", "--resume", "{bogus}"], "{bogus}: not a lic training checkpoint (UnpicklingError)"),
    (["--steps", "1", "--resume", "no-such-model"], "unknown model 'no-such-model' (available: "),
    (["--steps", "1", "--resume", "{image}"], "cannot load weights {image}: not a safetensors weights file"),
    (["--steps", "1", "--eval-dir", "{empty}"], "--eval-dir: no images found in {empty}"),
    (["--steps", "1", "--device", "bogus"], "unknown device 'bogus'"),
    (["--steps", "1", "--config", '{"N": -5}'], "bad model configuration: 'N' takes a whole number >= 1, got -5"),
    (["--steps", "1", "--config", '{"lambdas": []}'],
     "bad model configuration: 'lambdas' takes a non-empty list of positive numbers, got []"),
    (["--steps", "1", "--model", "toderici2017-rnn", "--config", '{"iterations": 2.5}'],
     "bad model configuration: 'iterations' takes a whole number >= 1, got 2.5"),
    (["--steps", "1", "--name", "../../elsewhere"], "--name takes a plain model name"),
    (["--steps", "1", "--eval-images", "2"], "--eval-images limits --eval-dir: give --eval-dir FOLDER too"),
    (["--steps", "1", "--resume", "{upper}"], "{upper}: not a lic training checkpoint (UnpicklingError)"),
    (["--steps", "1", "--model", "toderici2017-rnn", "--resume", "bmshj2018-hyperprior"],
     "--model toderici2017-rnn does not match the weights of bmshj2018-hyperprior (a ScaleHyperprior)"),
])
def test_bad_training_options_are_refused_before_anything_is_written(tmp_path, data_dir, option, message, capsys):
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a checkpoint")
    (tmp_path / "BOGUS.PT").write_text("not a checkpoint")  # a checkpoint, whatever the case of its suffix
    image = sorted(data_dir.iterdir())[0]  # an image given where weights belong
    (tmp_path / "empty").mkdir()
    names = {"{bogus}": str(bogus), "{image}": str(image), "{empty}": str(tmp_path / "empty"),
             "{upper}": str(tmp_path / "BOGUS.PT")}

    def fill(text: str) -> str:
        for k, v in names.items():
            text = text.replace(k, v)
        return text

    option, message = [fill(o) for o in option], fill(message)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--quiet", *option]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lic: error: {message}") and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_folder_whose_images_all_fail_to_decode_is_refused_before_the_run_starts(tmp_path, data_dir, workers,
                                                                                    capsys):
    """Headers that read but pixel data that does not (truncated files): one line, in the main process (not a
    DataLoader worker's traceback), and no output folder."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in sorted(data_dir.iterdir())[:2]:
        raw = p.read_bytes()
        (broken / p.name).write_bytes(raw[:len(raw) // 2])
    out = tmp_path / "run"
    assert main(["train", "--data", str(broken), "--out", str(out), "--steps", "1", "--crop", "32", "--batch", "2",
                 "--workers", workers, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "lic: error: no training image could be decoded (2 of 2 tried failed)"
    assert not out.exists()


def test_an_earlier_run_is_continued_or_replaced_only_on_request(tmp_path, data_dir, capsys):
    """An --out that holds a run: a new run there is refused (its weights are kept) unless it resumes that run's
    checkpoint (with a budget left) or --force starts over; a refused option (here another model's --mixed-quantization) leaves no
    folder behind."""
    out = tmp_path / "run"
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "1", *ARGS]) == 0
    before = (out / "ckpt.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "1", "--seed", "3", *ARGS]) == 2
    assert capsys.readouterr().err.strip() == (f"lic: error: {out} already holds a run (ckpt.pt, model.safetensors, log.jsonl): "
                                               f"--resume {out / 'ckpt.pt'} continues it, --force starts over there, "
                                               "or give another --out")
    assert (out / "ckpt.pt").read_bytes() == before
    # --steps on an exact resume is the run's total: a checkpoint that has spent it is refused, not run a step on
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "1", "--resume",
                 str(out / "ckpt.pt"), *ARGS]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"lic: error: {out / 'ckpt.pt'} is at step 1 already: on an exact resume --steps and --minutes are the "
        "run's totals; give a larger budget")
    assert (out / "ckpt.pt").read_bytes() == before
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "2", "--resume",
                 str(out / "ckpt.pt"), *ARGS]) == 0
    assert torch.load(out / "ckpt.pt", weights_only=False)["step"] == 2
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "1", "--force", *ARGS]) == 0
    assert torch.load(out / "ckpt.pt", weights_only=False)["step"] == 1
    assert [json.loads(l)["step"] for l in (out / "log.jsonl").read_text().splitlines()] == [1]  # a new log
    # a log alone (a run that left nothing else) is not appended to by another run
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "log.jsonl").write_text('{"step": 7}\n')
    capsys.readouterr()
    assert main(["train", "--data", str(data_dir), "--out", str(lone), "--steps", "1", *ARGS]) == 2
    assert capsys.readouterr().err.strip().startswith(f"lic: error: {lone} already holds a run (log.jsonl): ")
    assert (lone / "log.jsonl").read_text() == '{"step": 7}\n'
    # warm-starting from the weights in --out would overwrite them: refused even with --force
    weights = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "1", "--force", "--resume",
                 str(out / "model.safetensors"), *ARGS]) == 2
    assert capsys.readouterr().err.strip().startswith(f"lic: error: --resume {out / 'model.safetensors'} lies in "
                                                      "--out, where this run writes its own weights")
    assert (out / "model.safetensors").read_bytes() == weights
    assert main(["train", "--model", "toderici2017-rnn", "--data", str(data_dir), "--out", str(tmp_path / "r"),
                 "--steps", "1", "--mixed-quantization", "--quiet", "--workers", "0"]) == 2
    assert not (tmp_path / "r").exists()


def test_training_skips_unreadable_images_with_a_warning(tmp_path, data_dir, capsys):
    """A folder with a file that is no image and one that is cut short: both are named in warnings, the run
    trains on the rest; a folder of nothing but broken files is refused before --out is made."""
    import shutil

    d = tmp_path / "mixed"
    shutil.copytree(data_dir, d)
    (d / "notes.png").write_text("not an image")
    jpeg = (d / "cut.jpg")
    Image.open(data_dir / "coffee.png").convert("RGB").save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[:2000])
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(d / "deep.png")  # 16-bit grey
    out = tmp_path / "run"
    assert main(["train", "--data", str(d), "--out", str(out), "--steps", "12", *ARGS]) == 0
    err = [l for l in capsys.readouterr().err.splitlines() if l.startswith("lic:")]
    assert err[0] == f"lic: warning: skipping 1 unreadable file in {d} (first: {d / 'notes.png'}: UnidentifiedImageError)"
    assert set(err[1:]) <= {f"lic: warning: training image {d / 'cut.jpg'} cannot be decoded (OSError); using others"}
    assert torch.load(out / "ckpt.pt", weights_only=False)["step"] == 12
    from lic.data import CropDataset

    crop = CropDataset(d, crop=32)._crop(d / "deep.png")  # 16-bit scaled to 8 bits, not clipped to white
    assert crop.dtype == torch.uint8 and crop.shape == (3, 32, 32) and 0 < crop.float().mean() < 250
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_text("no")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "o"), "--steps", "1", "--quiet"]) == 2
    assert capsys.readouterr().err.strip().endswith(f"lic: error: no readable images found in {bad}")
    assert not (tmp_path / "o").exists()


def test_rate_term_stays_fp32_under_bf16_autocast():
    from lic.models import ScaleHyperprior

    m = ScaleHyperprior(N=16, M=24).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(torch.rand(2, 3, 64, 64), 2)
    assert all(l.dtype == torch.float32 for l in out["likelihoods"].values())


def test_weights_exported_at_every_checkpoint_without_touching_training(tmp_path, data_dir):
    """Each checkpoint also writes the fp16 model.safetensors (what comes back from a lent GPU);
    exporting a copy must not round the weights being trained."""
    a, b = tmp_path / "every", tmp_path / "end"
    common = ["--data", str(data_dir), "--steps", "3", "--seed", "5", *ARGS]
    assert main(["train", "--out", str(a), "--ckpt-minutes", "0", *common]) == 0
    assert main(["train", "--out", str(b), "--ckpt-minutes", "1000", *common]) == 0
    sa = torch.load(a / "ckpt.pt", weights_only=False)["model"]
    sb = torch.load(b / "ckpt.pt", weights_only=False)["model"]
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa if sa[k].is_floating_point())
    assert not (a / "model.safetensors.tmp").exists()
    import lic

    assert lic.load_model(str(a / "model.safetensors")).qualities == [1, 2, 3, 4, 5, 6]


def test_weights_from_before_the_latent_codec_layout_still_load():
    """bmshj2018-hyperprior once kept h_a, h_s and the entropy models at the top level; such weights and
    checkpoints load under today's names, and Adam's parameter numbering (registration order) is unchanged."""
    from lic.models import ScaleHyperprior

    torch.manual_seed(0)
    new = ScaleHyperprior(N=8, M=12).eval()
    new.update()
    old_state = {k.removeprefix("latent."): v for k, v in new.state_dict().items()}
    assert any(k.startswith("h_s_int.") for k in old_state)  # really the old names
    again = ScaleHyperprior(N=8, M=12).eval()
    again.load_state(old_state)
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), again.state_dict().values()))
    assert again.tables_current()
    params = {n for n, _ in again.named_parameters()}
    assert [k for k in again.upgrade_state(old_state) if k in params] == [n for n, _ in again.named_parameters()]
    x = torch.rand(1, 3, 40, 72)
    a, b = new.compress(x, 2), again.compress(x, 2)
    assert a.chunks == b.chunks


def _fine_tuned(tmp_path, data_dir, flag: str, lr: str):
    """A 2-step base model, then 3 steps of ``flag`` (--decoder-only / --encoder-only) from its weights: (base
    folder, tuned folder, base model, tuned model, names of the tensors that changed, a 50x70 photo crop)."""
    import lic

    base, tuned = tmp_path / "base", tmp_path / "tuned"
    assert main(["train", "--data", str(data_dir), "--out", str(base), "--steps", "2", *ARGS]) == 0
    assert main(["train", "--data", str(data_dir), "--out", str(tuned), "--steps", "3", flag,
                 "--resume", str(base / "model.safetensors"), "--lr", lr, "--warmup", "1",
                 "--quiet", "--batch", "2", "--crop", "64", "--workers", "0", "--log-every", "1"]) == 0
    a = lic.load_model(str(base / "model.safetensors"))
    b = lic.load_model(str(tuned / "model.safetensors"))
    sa, sb = a.state_dict(), b.state_dict()
    changed = {k for k in sa if sa[k].is_floating_point() and not torch.equal(sa[k], sb[k])}
    x = torch.from_numpy(np.asarray(Image.open(data_dir / "rocket.png"))[:50, :70].copy()).permute(2, 0, 1)[None] / 255.0
    return base, tuned, a, b, changed, x


def test_decoder_only_fine_tuning_keeps_every_coded_byte(tmp_path, data_dir, capsys):
    """--decoder-only trains g_s (and the inverse gains) on rounded latents: the coded chunks of any image
    stay byte for byte those of the weights it started from, while the decoder really changes."""
    import lic

    base, tuned, a, b, changed, x = _fine_tuned(tmp_path, data_dir, "--decoder-only", "1e-3")
    assert changed and all(k.startswith("g_s.") or k == "log_inv_gain" for k in changed)
    assert any(k.startswith("g_s.") for k in changed)
    for q in (1, 6):
        ca, cb = a.compress(x, q, reconstruct=True), b.compress(x, q, reconstruct=True)
        assert ca.chunks == cb.chunks
        assert not torch.equal(ca.x_hat, cb.x_hat)
    # resuming its checkpoint stays decoder-only (the optimizer holds only g_s's parameters)
    assert main(["train", "--data", str(data_dir), "--out", str(tuned), "--steps", "4",
                 "--resume", str(tuned / "ckpt.pt"), "--quiet", "--batch", "2", "--crop", "64", "--workers", "0"]) == 0
    c = lic.load_model(str(tuned / "model.safetensors"))
    assert c.compress(x, 3).chunks == a.compress(x, 3).chunks
    # a one-line refusal without weights to fine-tune (progressive models: test_recurrent)
    capsys.readouterr()
    assert main(["train", "--data", str(data_dir), "--out", str(tmp_path / "x"), "--steps", "1", "--decoder-only"]) == 2
    assert capsys.readouterr().err.strip() == "lic: error: --decoder-only fine-tunes trained weights: give them with --resume"


def test_encoder_only_fine_tuning_keeps_the_decoder(tmp_path, data_dir, capsys):
    """--encoder-only trains g_a, its gains and h_a: everything the decoder runs (g_s, the inverse gains, h_s,
    the factorized prior and the coding tables) stays as it was, so a file made with the old weights decodes
    to the same pixels with the new ones, while the encoder really writes other latents."""
    base, tuned, a, b, changed, x = _fine_tuned(tmp_path, data_dir, "--encoder-only", "1e-2")
    assert changed and all(k.startswith(("g_a.", "latent.h_a.")) or k == "log_gain" for k in changed)
    assert any(k.startswith("g_a.") for k in changed)
    sb = b.state_dict()  # the integer coding tables and integer networks, too
    assert all(torch.equal(v, sb[k]) for k, v in a.state_dict().items() if not v.is_floating_point())
    differs = False
    for q in (1, 6):
        old = a.compress(x, q)
        assert torch.equal(b.decompress(old.chunks, 50, 70, q), a.decompress(old.chunks, 50, 70, q))
        differs |= b.compress(x, q).chunks != old.chunks
    assert differs
    capsys.readouterr()
    assert main(["train", "--data", str(data_dir), "--out", str(tmp_path / "x"), "--steps", "1", "--encoder-only",
                 "--decoder-only", "--resume", str(base / "model.safetensors")]) == 2
    assert capsys.readouterr().err.strip() == "lic: error: --encoder-only and --decoder-only exclude each other: give one"
    assert not (tmp_path / "x").exists()


def test_mixed_quantization_decodes_what_the_coder_sends(tmp_path, data_dir, capsys):
    """--mixed-quantization: in training, g_s sees round(y) (so x̂ is exactly the decoder's), the rate term
    still sees additive noise, and the encoder still gets a gradient through the rounding."""
    from lic.models import ScaleHyperprior

    torch.manual_seed(0)
    model = ScaleHyperprior(N=8, M=12)
    x = torch.rand(2, 3, 48, 64)
    model.eval()
    model.update()
    with torch.no_grad():
        coded = model(x, 2)
    model.train()
    plain = model(x, 2)
    model.mixed_quantization = True
    mixed = model(x, 2)
    assert torch.equal(mixed["x_hat"], coded["x_hat"]) and not torch.equal(plain["x_hat"], coded["x_hat"])
    assert not torch.equal(mixed["likelihoods"]["y"], coded["likelihoods"]["y"])  # noisy ŷ for the rate
    mixed["x_hat"].square().mean().backward()
    assert model.g_a[0].weight.grad.abs().sum() > 0
    # through the CLI: a run and its exact resume keep the setting; progressive models are refused
    out = tmp_path / "mq"
    assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "2", "--mixed-quantization", *ARGS]) == 0
    assert torch.load(out / "ckpt.pt", weights_only=False)["mixed_quantization"] is True
    capsys.readouterr()
    assert main(["train", "--model", "toderici2017-rnn", "--data", str(data_dir), "--out", str(tmp_path / "r"),
                 "--steps", "1", "--mixed-quantization", "--quiet", "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == ("lic: error: --mixed-quantization trains one-shot transform codecs "
                                               "(bmshj2018-hyperprior, attention-*), not toderici2017-rnn")


def test_averaged_runs_are_the_mean_of_their_weights_and_code_exactly(tmp_path, data_dir):
    """tools/average_weights.py: two runs from the same weights (other data seeds) average into one model whose
    float weights are the runs' mean and whose coding tables are rebuilt from them (the decoded image is the
    encoder's reconstruction); runs of another configuration are refused, with nothing written."""
    base, a, b = tmp_path / "base", tmp_path / "a", tmp_path / "b"
    assert main(["train", "--data", str(data_dir), "--out", str(base), "--steps", "1", *ARGS]) == 0
    for out, seed in ((a, "1"), (b, "2")):
        assert main(["train", "--data", str(data_dir), "--out", str(out), "--steps", "2", "--seed", seed,
                     "--resume", str(base / "ckpt.pt"), *ARGS]) == 0
    tool = [sys.executable, os.path.join(os.path.dirname(__file__), "..", "tools", "average_weights.py")]
    soup = tmp_path / "soup"
    subprocess.run([*tool, str(a / "ckpt.pt"), str(b / "ckpt.pt"), "--out", str(soup)], check=True,
                   capture_output=True)
    sa, sb, ss = (torch.load(d / "ckpt.pt", weights_only=False)["model"] for d in (a, b, soup))
    floats = [k for k in sa if sa[k].is_floating_point()]
    assert any(not torch.equal(sa[k], sb[k]) for k in floats)
    assert all(torch.allclose(ss[k], (sa[k] + sb[k]) / 2, rtol=0, atol=1e-7) for k in floats)
    import lic
    from lic import codec

    model = lic.load_model(str(soup / "model.safetensors"))
    img = Image.fromarray(np.asarray(Image.open(data_dir / "astronaut.png"))[:50, :70])
    enc = codec.encode(img, model=model, quality=3, reconstruct=True)
    assert np.array_equal(np.asarray(codec.decode(enc.data, model=model)), np.asarray(enc.reconstruction))
    # refused in one line, nothing written: another configuration, a file that is no checkpoint, an --out that
    # holds an input or an earlier result
    other = torch.load(a / "ckpt.pt", weights_only=False)
    other["config"] = {**other["config"], "N": other["config"]["N"] + 1}
    torch.save(other, tmp_path / "other.pt")
    for run in (a, b):  # runs whose h_s weights its integer copy cannot store (lic train no longer makes them)
        big = torch.load(run / "ckpt.pt", weights_only=False)
        big["model"]["latent.h_s.0.weight"].view(-1)[0] = 20.0
        torch.save(big, tmp_path / f"big-{run.name}.pt")
    before = (soup / "ckpt.pt").read_bytes()
    for inputs, out, message in (
            ([a / "ckpt.pt", tmp_path / "other.pt"], tmp_path / "x",
             f"{tmp_path / 'other.pt'}: another model configuration than {a / 'ckpt.pt'}"),
            ([a / "ckpt.pt", data_dir / "coffee.png"], tmp_path / "x",
             f"{data_dir / 'coffee.png'}: not a training checkpoint of lic train (ckpt.pt)"),
            ([a / "ckpt.pt", b / "ckpt.pt"], a, f"{a}: holds one of the checkpoints to average; give another --out"),
            ([a / "ckpt.pt", b / "ckpt.pt"], soup,
             f"{soup}: already holds ckpt.pt or model.safetensors (--force replaces them)"),
            ([tmp_path / "big-a.pt", tmp_path / "big-b.pt"], tmp_path / "x",
             "cannot export the mean of these runs: cannot build the integer hyper-synthesis: a weight beyond ±8, "
             "more than the integer copy stores (lic train keeps such weights within it)")):
        bad = subprocess.run([*tool, *map(str, inputs), "--out", str(out)], capture_output=True, text=True)
        assert bad.returncode != 0 and bad.stderr.strip() == message
    assert not (tmp_path / "x").exists() and (soup / "ckpt.pt").read_bytes() == before
    # a weights file among the inputs (e.g. the shipped model a run continued): no Adam state, so weights only
    mixed = tmp_path / "mixed"
    subprocess.run([*tool, str(a / "model.safetensors"), str(b / "ckpt.pt"), "--out", str(mixed)], check=True,
                   capture_output=True)
    assert sorted(p.name for p in mixed.iterdir()) == ["model.safetensors"]
    assert lic.load_model(str(mixed / "model.safetensors")).config() == model.config()


def test_a_published_card_keeps_the_training_history_it_continues(load_tool, tiny_weights):
    """tools/publish_model.py --train-from: a card's Training lines read back as written (also after an edit by
    hand), in order, and a new round's keys replace the lines of the same name in place or follow them."""
    import lic

    pub = load_tool("publish_model")
    model = lic.load_model(str(tiny_weights))
    history = {"steps": "1,000 in all", "data": "photos: crops of 64x64", "first round": "-4.0 % (see `x`)"}
    text = pub.card("tiny", model, history, None)
    assert pub.training_lines(text) == history
    edited = text.replace("1,000 in all", "1,000 in all (edited)") + "\n## Later section\n\n- **not**: training\n"
    merged = {**pub.training_lines(edited), **{"steps": "1,500 in all", "second round": "-2.0 %"}}
    assert list(merged) == ["steps", "data", "first round", "second round"]
    assert pub.training_lines(pub.card("tiny", model, merged, None)) == merged
    assert pub.training_lines("# a card without a Training section\n") == {}
