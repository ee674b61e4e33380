"""The command line as a user meets it, bad input included."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import lic
from lic.cli import main


def run(*args):
    """The real command in a subprocess: exit code, stdout, stderr."""
    p = subprocess.run([sys.executable, "-m", "lic", *map(str, args)], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def one_line_error(rc, err):
    assert rc != 0
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("lic: error:"), err
    assert "Traceback" not in err


def test_compress_decompress_info(tmp_path, photo_file):
    out = tmp_path / "a.lic"
    assert main(["compress", str(photo_file), "-o", str(out), "-q", "2", "--quiet"]) == 0
    png = tmp_path / "a.png"
    assert main(["decompress", str(out), "-o", str(png), "--quiet"]) == 0
    assert Image.open(png).size == Image.open(photo_file).size
    rc, stdout, _ = run("info", out)
    assert rc == 0 and "bmshj2018-hyperprior" in stdout and "chunks    2 (complete)" in stdout
    rc, stdout, _ = run("models")
    assert rc == 0 and "bmshj2018-hyperprior" in stdout and "qualities" in stdout
    assert "toderici2017-rnn" in stdout  # trainable architectures are listed even without shipped weights


def pipe(*args, stdin: bytes = b"", stdout=subprocess.PIPE):
    """The real command with bytes on standard input: exit code, stdout bytes, stderr text."""
    p = subprocess.run([sys.executable, "-m", "lic", *map(str, args)], input=stdin, stdout=stdout,
                       stderr=subprocess.PIPE)
    return p.returncode, p.stdout, p.stderr.decode()


def test_standard_input_and_output(tmp_path, photo_file):
    """'-' stands for standard input (INPUT) and standard output (-o), as with cwebp or gzip: the same
    bytes as through files; the report goes to stderr, so that stdout carries nothing but the data."""
    assert main(["compress", str(photo_file), "-o", str(tmp_path / "a.lic"), "-q", "2", "--quiet"]) == 0
    assert main(["decompress", str(tmp_path / "a.lic"), "-o", str(tmp_path / "a.png"), "--quiet"]) == 0
    rc, data, err = pipe("compress", "-", "-o", "-", "-q", "2", stdin=photo_file.read_bytes())
    assert rc == 0 and data == (tmp_path / "a.lic").read_bytes()
    assert err.startswith("stdin -> stdout:") and "bpp" in err
    rc, png, err = pipe("decompress", "-", stdin=data)  # INPUT '-' without -o: standard output
    assert rc == 0 and png.startswith(b"\x89PNG") and "stdin -> stdout (PNG): 256x192 RGB" in err  # the fixture photo
    (tmp_path / "b.png").write_bytes(png)
    assert Image.open(tmp_path / "b.png").tobytes() == Image.open(tmp_path / "a.png").tobytes()
    rc, out, err = pipe("info", "-", stdin=data)
    assert rc == 0 and b"file      stdin (" in out and b"chunks    2 (complete)" in out
    rc, data2, err = pipe("compress", photo_file, "-o", "-", "-q", "2", "--quiet")  # a file to standard output
    assert rc == 0 and data2 == data and err == ""
    rc, _, err = pipe("decompress", "-", "-o", tmp_path / "c.png", "--quiet", stdin=data)  # and the other way
    assert rc == 0 and Image.open(tmp_path / "c.png").tobytes() == Image.open(tmp_path / "a.png").tobytes()


def test_standard_input_and_output_bad_cases(tmp_path, photo_file):
    rc, out, err = pipe("compress", "-", "-o", tmp_path / "e.lic")  # nothing piped in
    one_line_error(rc, err)
    assert "stdin: empty input" in err and not (tmp_path / "e.lic").exists()
    rc, out, err = pipe("compress", "-", stdin=b"not an image")
    one_line_error(rc, err)
    assert "stdin: not a readable image" in err and out == b""
    rc, out, err = pipe("decompress", "-", stdin=b"not a .lic file")
    one_line_error(rc, err)
    assert "not a .lic file" in err and out == b""
    rc, out, err = pipe("compress", photo_file.parent, "-o", "-")
    one_line_error(rc, err)
    assert "a folder input needs -o OUTPUT_FOLDER" in err
    if sys.platform.startswith("linux"):  # binary data is not sent to a terminal
        import pty

        leader, follower = pty.openpty()
        try:
            rc, _, err = pipe("compress", "-", stdin=photo_file.read_bytes(), stdout=follower)
        finally:
            os.close(follower)
            os.close(leader)
        one_line_error(rc, err)
        assert "will not write binary data to a terminal" in err


def test_models_describes_progressive_models(tmp_path, monkeypatch, capsys):
    """Shipped progressive models are described by their own terms (iterations, layers), and a long
    per-iteration Kodak list is cut to 1, 2, 4, 8, 16 iterations."""
    from lic import zoo
    from lic.models import RecurrentCodec, ScalableRecurrentCodec

    kodak = {str(k): {"bpp": k / 8, "psnr": 20 + k, "ms_ssim": 0.9} for k in range(1, 17)}
    rnn = RecurrentCodec(cell="gru", enc_channels=(8, 8, 8, 8), dec_channels=(8, 8, 8, 8, 8), context_hidden=(4, 4))
    zoo.save_weights(rnn.eval(), tmp_path / "rnn.safetensors", name="toderici2017-rnn", extra={"kodak": kodak})
    ms = RecurrentCodec(cell="gru", enc_channels=(8, 8, 8, 8), dec_channels=(8, 8, 8, 8, 8), context_hidden=(4, 4),
                        loss="log-ms-ssim")
    zoo.save_weights(ms.eval(), tmp_path / "ms.safetensors", name="toderici2017-rnn-msssim", extra={"kodak": kodak})
    su = ScalableRecurrentCodec(enc_channels=(8, 8, 8, 8), dec_channels=(8, 8, 8, 8, 8), latent=8, hyper=8,
                                hyper_hidden=8)
    zoo.save_weights(su.eval(), tmp_path / "su.safetensors", name="su2020-rnn-hyperprior")
    (tmp_path / "su.md").write_text("# card")
    su_ms = ScalableRecurrentCodec(enc_channels=(8, 8, 8, 8), dec_channels=(8, 8, 8, 8, 8), latent=8, hyper=8,
                                   hyper_hidden=8, loss="ms-ssim")
    layers = {str(k): {"bpp": k / 4, "psnr": 25 + k, "ms_ssim": 0.95} for k in range(1, 5)}
    zoo.save_weights(su_ms.eval(), tmp_path / "su_ms.safetensors", name="su2020-rnn-hyperprior-msssim",
                     extra={"kodak": layers})
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "gru cells, additive reconstruction, progressive" in out and "1..16 iterations" in out
    blocks = {b.splitlines()[0].split()[0]: b for b in ("\n" + out).split("\ntoderici")[1:]}
    kodak_line = next(l for l in blocks["2017-rnn"].splitlines() if l.strip().startswith("Kodak"))
    assert [p.split(":")[0].strip() for p in kodak_line.split("Kodak")[1].split(",")] == ["q1", "q2", "q4", "q8", "q16"]
    assert "MS-SSIM" not in kodak_line and f"loss {rnn.loss_kind}" in blocks["2017-rnn"]
    # a model trained for MS-SSIM says so, and lists its MS-SSIM beside the PSNR
    assert "loss log-ms-ssim" in blocks["2017-rnn-msssim"] and "/ MS-SSIM 0.9000" in blocks["2017-rnn-msssim"]
    assert "RNN hyperprior, progressive, loss mse" in out and "1..4 layers" in out and "N=None" not in out
    su_blocks = {b.splitlines()[0].split()[0]: b for b in ("\n" + out).split("\nsu2020")[1:]}
    assert "loss ms-ssim" in su_blocks["-rnn-hyperprior-msssim"]
    assert "q4: 1.000 bpp / 29.00 dB / MS-SSIM 0.9500" in su_blocks["-rnn-hyperprior-msssim"]
    assert f"model card    {tmp_path / 'su.md'}" in out


def test_folder_mode(tmp_path, photos):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    photos["coffee"].save(src / "a.png")
    photos["chelsea"].save(src / "sub" / "b.jpg")
    (src / "notes.txt").write_text("not an image")
    assert main(["compress", str(src), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.lic")) == \
        ["a.lic", "sub/b.lic"]
    # and back: a folder of .lic files to a folder of PNGs, the same images as one file at a time
    assert main(["decompress", str(tmp_path / "out"), "-o", str(tmp_path / "back"), "--quiet"]) == 0
    for name in ("a", "sub/b"):
        assert main(["decompress", str(tmp_path / "out" / f"{name}.lic"), "-o", str(tmp_path / "one.png"), "--quiet",
                     "--force"]) == 0
        assert Image.open(tmp_path / "back" / f"{name}.png").tobytes() == Image.open(tmp_path / "one.png").tobytes()


def test_folder_mode_reports_each_failure_and_goes_on(tmp_path, photos, capsys):
    src = tmp_path / "in"
    src.mkdir()
    photos["coffee"].save(src / "a.png")
    photos["chelsea"].save(src / "a.jpg")  # both would be a.lic: the second is refused, not written over the first
    photos["chelsea"].save(src / "b.png")
    assert main(["compress", str(src), "-o", str(tmp_path / "out"), "--quiet", "--force"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a.png: its output" in err[0] and "already" in err[0] and "a.jpg" in err[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.lic", "b.lic"]
    assert lic.decompress((tmp_path / "out" / "a.lic").read_bytes()).size == photos["chelsea"].size  # a.jpg's
    (tmp_path / "out" / "c.lic").write_bytes((tmp_path / "out" / "b.lic").read_bytes()[:-5])  # truncated
    assert main(["decompress", str(tmp_path / "out"), "-o", str(tmp_path / "back"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lic: error: ") and "c.lic" in err[0] and "truncated" in err[0]
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["a.png", "b.png"]
    (tmp_path / "empty").mkdir()
    assert main(["decompress", str(tmp_path / "empty"), "-o", str(tmp_path / "x")]) == 2
    assert "no .lic files found" in capsys.readouterr().err
    assert main(["decompress", str(tmp_path / "out"), "-o", "-"]) != 0
    assert "a folder input needs -o OUTPUT_FOLDER" in capsys.readouterr().err
    # x.lic and x.LIC would both be x.png: the second is refused, not written over the first
    (tmp_path / "out" / "A.LIC").write_bytes((tmp_path / "out" / "b.lic").read_bytes())
    (tmp_path / "out" / "c.lic").unlink()
    (tmp_path / "out" / "a.lic").rename(tmp_path / "out" / "A.lic")
    assert main(["decompress", str(tmp_path / "out"), "-o", str(tmp_path / "back2"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "its output" in err[0] and "(rename one of them)" in err[0]
    assert sorted(p.name for p in (tmp_path / "back2").iterdir()) == ["A.png", "b.png"]
    # a run where every file fails leaves no folder behind, however deep -o was
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_text("not an image")
    (bad / "y.gif").write_text("not an image either")  # GIFs are searched for too
    assert main(["compress", str(bad), "-o", str(tmp_path / "deep" / "er"), "--quiet"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
    assert not (tmp_path / "deep").exists()


def test_existing_output_needs_force_and_input_is_never_overwritten(tmp_path, photo_file):
    out = tmp_path / "a.lic"
    out.write_bytes(b"keep me")
    rc, _, err = run("compress", photo_file, "-o", out)
    one_line_error(rc, err)
    assert "already exists" in err and out.read_bytes() == b"keep me"
    assert main(["compress", str(photo_file), "-o", str(out), "--force", "--quiet"]) == 0
    assert out.read_bytes() != b"keep me"
    before = photo_file.read_bytes()
    rc, _, err = run("compress", photo_file, "-o", photo_file, "--force")
    one_line_error(rc, err)
    assert "overwrite the input" in err and photo_file.read_bytes() == before


def test_outputs_get_the_usual_permissions(tmp_path, photo_file):
    """Outputs are written through private temporary files, yet end with the permissions any other tool
    gives: 0o666 less the umask for a new file, the replaced file's own with --force; weights too."""
    import stat

    from lic import zoo
    from lic.models import ScalableRecurrentCodec

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    old = os.umask(0o027)
    try:
        lic, png = tmp_path / "a.lic", tmp_path / "a.png"
        assert main(["compress", str(photo_file), "-o", str(lic), "--quiet"]) == 0
        assert main(["decompress", str(lic), "-o", str(png), "--quiet"]) == 0
        assert mode(lic) == mode(png) == 0o640
        os.chmod(lic, 0o604)
        assert main(["compress", str(photo_file), "-o", str(lic), "--force", "--quiet"]) == 0
        assert mode(lic) == 0o604
        small = ScalableRecurrentCodec(enc_channels=(8, 8, 8, 8), dec_channels=(8, 8, 8, 8, 8), latent=8, hyper=8,
                                       hyper_hidden=8)
        zoo.save_weights(small.eval(), tmp_path / "w.safetensors", name="su2020-rnn-hyperprior")
        assert mode(tmp_path / "w.safetensors") == 0o640
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def listing(d):
    return sorted(os.listdir(d))


@pytest.mark.parametrize("case", ["not_image", "empty", "missing", "empty_folder", "unknown_model",
                                  "unknown_quality", "unwritable", "no_such_out_dir", "no_threads"])
def test_bad_compress_input(tmp_path, photo_file, case):
    args = {"not_image": lambda: [tmp_path / "x.png"], "empty": lambda: [tmp_path / "e.png"],
            "missing": lambda: [tmp_path / "nope.png"], "empty_folder": lambda: [tmp_path / "empty", "-o", tmp_path / "o"],
            "unknown_model": lambda: [photo_file, "--model", "nosuch"],
            "unknown_quality": lambda: [photo_file, "-q", "99"],
            "unwritable": lambda: [photo_file, "-o", "/proc/lic-test.lic"],  # not writable, even for root
            "no_such_out_dir": lambda: [photo_file, "-o", tmp_path / "nodir" / "a.lic"],
            "no_threads": lambda: [photo_file, "-o", tmp_path / "a.lic", "--threads", "0"]}
    (tmp_path / "x.png").write_text("this is text")
    (tmp_path / "e.png").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    before = listing(tmp_path)
    rc, _, err = run("compress", *args[case]())
    one_line_error(rc, err)
    assert listing(tmp_path) == before


def test_threads_option_changes_the_speed_only(tmp_path, photo_file):
    """--threads N (as cjxl --num_threads, avifenc -j): the same file and the same decoded image at 1 and 2."""
    for n in (1, 2):
        rc, _, err = run("compress", photo_file, "-o", tmp_path / f"t{n}.lic", "--threads", n, "--quiet")
        assert rc == 0, err
        rc, _, err = run("decompress", tmp_path / "t1.lic", "-o", tmp_path / f"t{n}.png", "--threads", n, "--quiet")
        assert rc == 0, err
    assert (tmp_path / "t1.lic").read_bytes() == (tmp_path / "t2.lic").read_bytes()
    assert Image.open(tmp_path / "t1.png").tobytes() == Image.open(tmp_path / "t2.png").tobytes()
    import torch

    before = torch.get_num_threads()
    try:  # and the option takes effect
        assert main(["info", str(tmp_path / "t1.lic")]) == 0 and torch.get_num_threads() == before
        assert main(["decompress", str(tmp_path / "t1.lic"), "-o", str(tmp_path / "t3.png"), "--threads", "3",
                     "--quiet"]) == 0
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def lic_file(tmp_path, photo_file):
    out = tmp_path / "good.lic"
    assert main(["compress", str(photo_file), "-o", str(out), "-q", "1", "--quiet"]) == 0
    return out


@pytest.mark.parametrize("case", ["truncated", "corrupted", "not_lic", "empty", "other_weights", "bad_ext",
                                  "exists", "alpha_to_jpeg", "alpha_to_gif", "gray_alpha_to_pcx", "size_to_icns"])
def test_bad_decompress_input(tmp_path, lic_file, tiny_weights, photo_file, case):
    data = lic_file.read_bytes()
    src = tmp_path / "in.lic"
    out = tmp_path / "out.png"
    extra = []
    if case == "truncated":
        src.write_bytes(data[: len(data) - 10])
    elif case == "corrupted":
        bad = bytearray(data)
        bad[-20] ^= 0x10
        src.write_bytes(bytes(bad))
    elif case == "not_lic":
        src.write_bytes(photo_file.read_bytes())
    elif case == "empty":
        src.write_bytes(b"")
    elif case == "other_weights":
        # same model name, different weights: must be refused, not decoded into garbage
        from lic import codec, zoo

        m = zoo.load_weights(tiny_weights)
        m.lic_name = "bmshj2018-hyperprior"
        src.write_bytes(codec.encode(Image.open(photo_file), model=m, quality=1).data)
    elif case == "bad_ext":
        src.write_bytes(data)
        out = tmp_path / "out.xyz"
    elif case == "exists":
        src.write_bytes(data)
        out.write_bytes(b"old")
    elif case == "alpha_to_jpeg":
        from lic import codec

        src.write_bytes(codec.encode(Image.open(photo_file).convert("RGBA"), model=tiny_weights, quality=1).data)
        extra = ["--model", str(tiny_weights)]
        out = tmp_path / "out.jpg"
    elif case in ("alpha_to_gif", "gray_alpha_to_pcx", "size_to_icns"):  # formats that would lose something
        from lic import codec

        mode, out = {"alpha_to_gif": ("RGBA", tmp_path / "out.gif"), "gray_alpha_to_pcx": ("LA", tmp_path / "o.pcx"),
                     "size_to_icns": ("RGB", tmp_path / "out.icns")}[case]
        src.write_bytes(codec.encode(Image.open(photo_file).convert(mode), model=tiny_weights, quality=1).data)
        extra = ["--model", str(tiny_weights)]
    before = listing(tmp_path)
    rc, _, err = run("decompress", src, "-o", out, *extra)
    one_line_error(rc, err)
    assert listing(tmp_path) == before
    if case in ("truncated", "corrupted", "not_lic", "empty"):  # what is wrong with the file, and which file
        assert f"lic: error: {src}: " in err
    if case == "other_weights":
        assert "other weights" in err
    if case in ("truncated",):
        assert "truncated" in err
    if case == "corrupted":
        assert "checksum" in err or "corrupt" in err
    if case == "alpha_to_jpeg":
        assert "JPEG has no alpha channel" in err
    if case == "alpha_to_gif":
        assert "GIF does not keep this RGBA image's alpha plane" in err
    if case == "gray_alpha_to_pcx":
        assert "cannot write LA images as PCX" in err
    if case == "size_to_icns":
        assert "ICNS does not keep the image's size" in err


def test_eval_writes_csv_and_json(tmp_path, photos):
    d = tmp_path / "imgs"
    d.mkdir()
    photos["coffee"].save(d / "c.png")
    # a quality given twice is measured once
    assert main(["eval", str(d), "--qualities", "1", "3", "1", "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    import csv
    import json

    with open(tmp_path / "ev" / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert set(summary["qualities"]) == {"1", "3"}
    for r in rows:
        assert float(r["bpp"]) == pytest.approx(8 * int(r["bytes"]) / (168 * 200))


def test_eval_skips_unreadable_files_and_refuses_bad_options(tmp_path, photos):
    """A broken file among the images is named, skipped and counted; the others are measured.  A file for the
    folder, a --limit below 1 and an --out that is a file are refused in one line, with nothing written."""
    import json

    d = tmp_path / "imgs"
    d.mkdir()
    photos["coffee"].save(d / "a.png")
    (d / "b.png").write_bytes(b"\x89PNG not really")
    p = subprocess.run([sys.executable, "-m", "lic", "eval", str(d), "--qualities", "1", "--out", str(tmp_path / "ev"),
                        "--quiet"], capture_output=True, text=True)
    assert p.returncode == 0 and "Traceback" not in p.stderr
    assert [line for line in p.stderr.splitlines() if line.strip()] == [
        f"lic: warning: skipped: {d / 'b.png'}: not a readable image (UnidentifiedImageError: cannot identify image "
        f"file '{d / 'b.png'}')"]
    assert p.stdout.splitlines()[-1].endswith("(1 images, 1 unreadable skipped)")
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["images"] == 1 and summary["skipped"] == ["b.png"] and summary["qualities"]["1"]["psnr"] > 20
    (tmp_path / "afile").write_bytes(b"x")
    for args, message in (([str(d / "a.png")], f"{d / 'a.png'}: is a file; lic eval takes a folder of images"),
                          ([str(d), "--limit", "0"], "--limit takes a number of images >= 1, got 0"),
                          ([str(d), "--limit", "-1"], "--limit takes a number of images >= 1, got -1"),
                          ([str(d), "--out", str(tmp_path / "afile")], f"--out must be a folder: {tmp_path / 'afile'} is a file")):
        p = subprocess.run([sys.executable, "-m", "lic", "eval", *args, "--quiet", *(["--out", str(tmp_path / "no")]
                            if "--out" not in args else [])], capture_output=True, text=True)
        assert p.returncode == 2 and p.stderr.strip() == f"lic: error: {message}", p.stderr
    assert not (tmp_path / "no").exists() and (tmp_path / "afile").read_bytes() == b"x"
    (d / "a.png").unlink()
    p = subprocess.run([sys.executable, "-m", "lic", "eval", str(d), "--out", str(tmp_path / "no"), "--quiet"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.splitlines()[-1] == f"lic: error: none of the 1 images in {d} could be read"
    assert not (tmp_path / "no").exists()


def test_eval_names_images_by_their_path_and_writes_strict_json(tmp_path, photos):
    """Rows name each image by its path in the folder (two x.png in sub-folders stay apart; a folder reached
    through a symbolic link is searched; a name that is not UTF-8 is written with \\x escapes); an image decoded
    without loss has an infinite PSNR in the CSV, null in summary.json, and stays out of the mean."""
    import csv
    import json

    import lic

    d = tmp_path / "imgs"
    for sub in ("a", "b"):
        (d / sub).mkdir(parents=True)
        photos["coffee"].crop((0, 0, 48, 32)).save(d / sub / "x.png")
    other = tmp_path / "elsewhere"
    other.mkdir()
    photos["chelsea"].crop((0, 0, 40, 40)).save(other / "cat.png")
    (d / "linked").symlink_to(other, target_is_directory=True)
    (d / "loop").symlink_to(d, target_is_directory=True)  # searched once, not forever
    names = ["a/x.png", "b/x.png", "linked/cat.png"]
    try:
        photos["astronaut"].crop((0, 0, 32, 32)).save(d / os.fsdecode(b"r\xff.png"))
        names.append("r\\xff.png")
    except (OSError, UnicodeError):  # a file system that takes only UTF-8 names
        pass
    flat = Image.new("RGB", (16, 16), (128, 128, 128))
    for _ in range(8):  # decode-encode until the codec returns the image unchanged
        again = lic.decompress(lic.compress(flat, quality=6))
        if np.array_equal(np.asarray(again), np.asarray(flat)):
            break
        flat = again
    assert np.array_equal(np.asarray(lic.decompress(lic.compress(flat, quality=6))), np.asarray(flat))
    flat.save(d / "flat.png")
    names.append("flat.png")
    assert main(["eval", str(d), "--qualities", "6", "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    with open(tmp_path / "ev" / "per_image.csv", encoding="utf-8") as f:
        rows = {r["image"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == sorted(names)
    assert rows["flat.png"]["psnr"] == "inf" and all(float(r["psnr"]) < 99 for n, r in rows.items() if n != "flat.png")
    strict = lambda c: pytest.fail(f"non-JSON constant {c}")  # noqa: E731
    q6 = json.loads((tmp_path / "ev" / "summary.json").read_text(), parse_constant=strict)["qualities"]["6"]
    assert q6["lossless_images"] == 1
    assert q6["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for n, r in rows.items() if n != "flat.png"]))


def test_eval_names_a_16_bit_image_once_in_its_warning(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(np.arange(40 * 48, dtype=np.uint16).reshape(40, 48) * 30).save(d / "deep.png")
    p = subprocess.run([sys.executable, "-m", "lic", "eval", str(d), "--qualities", "1", "2", "--out",
                        str(tmp_path / "ev"), "--quiet"], capture_output=True, text=True)
    assert p.returncode == 0
    assert [l for l in p.stderr.splitlines() if "8 bits" in l] == ["lic: warning: deep.png: I;16 image (16-bit) reduced "
                                                                   "to 8 bits"]


def test_eval_refuses_an_output_folder_it_cannot_make_before_measuring(tmp_path, photos, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    photos["coffee"].crop((0, 0, 32, 32)).save(d / "c.png")
    (tmp_path / "afile").write_bytes(b"x")
    assert main(["eval", str(d), "--out", str(tmp_path / "afile" / "ev"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (f"lic: error: --out {tmp_path / 'afile' / 'ev'}: cannot create folder "
                                               f"({tmp_path / 'afile'} is a file)")
    assert (tmp_path / "afile").read_bytes() == b"x"


def test_eval_of_images_too_small_for_ms_ssim(tmp_path, photos):
    """MS-SSIM is undefined below 161 px: the means leave such images out (null when none is left, so the
    JSON stays strict), and one warning line says so."""
    import json

    d = tmp_path / "imgs"
    d.mkdir()
    photos["coffee"].crop((0, 0, 96, 64)).save(d / "small.png")
    photos["coffee"].save(d / "large.png")
    p = subprocess.run([sys.executable, "-m", "lic", "eval", str(d), "--qualities", "1", "--out", str(tmp_path / "ev"),
                        "--quiet"], capture_output=True, text=True)
    assert p.returncode == 0 and "Traceback" not in p.stderr
    assert [line for line in p.stderr.splitlines() if line.strip()] == [
        "lic: warning: MS-SSIM needs images of at least 161 px on the short side: not measured for 1 of 2 images "
        "(their means leave them out; null when none is left)"]
    strict = lambda c: pytest.fail(f"non-JSON constant {c}")  # noqa: E731
    q1 = json.loads((tmp_path / "ev" / "summary.json").read_text(), parse_constant=strict)["qualities"]["1"]
    assert q1["ms_ssim_images"] == 1 and 0 < q1["ms_ssim"] < 1
    (d / "large.png").unlink()
    assert main(["eval", str(d), "--qualities", "1", "--out", str(tmp_path / "ev2"), "--quiet"]) == 0
    q1 = json.loads((tmp_path / "ev2" / "summary.json").read_text(), parse_constant=strict)["qualities"]["1"]
    assert q1["ms_ssim"] is None and q1["ms_ssim_db"] is None and q1["ms_ssim_images"] == 0 and q1["psnr"] > 20


def test_a_closed_output_pipe_stops_quietly(monkeypatch, capsys):
    """`lic models | head -1`: the reader leaves early; lic stops without an 'internal error' line."""
    import io

    class ClosedPipe(io.TextIOBase):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["models"]) == 141
    assert capsys.readouterr().err == ""


def test_help_version_and_refused_training_options_do_not_import_torch(tmp_path):
    """`lic --help`, `lic --version` and a refused `lic train` option answer at once: importing torch takes
    seconds, and none of them needs it."""
    code = ("import sys\nfrom lic.cli import build_parser, main\nbuild_parser()\n"
            f"rc = main(['train', '--data', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}, '--steps', '0'])\n"
            "print(rc, 'torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.stdout.split() == ["2", "False"], p.stderr
    assert p.stderr.strip() == "lic: error: --steps takes a whole number >= 1, got 0"


def test_demo_runs_with_a_weights_file_and_refuses_bad_options_before_writing(tmp_path, tiny_weights, photo_file,
                                                                           capsys):
    """lic demo --model WEIGHTS decodes with those weights (not the installed ones of the same name); a bad
    quality or an --out that is a file is refused before anything is printed or made."""
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(tiny_weights), "-q", "2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("lic demo: tiny-test, scikit-image astronaut 512x512")
    assert lines[2].startswith("lic q2 ") and lines[3].lstrip().startswith("JPEG q")
    assert sorted(p.name for p in out.iterdir()) == ["astronaut-q2.lic", "astronaut-q2.png", "astronaut.png"]
    for argv, message in ((["-q", "0", "--out", str(tmp_path / "d0")], "quality 0 not available (choose from 1..3)"),
                          (["-q", "9", "--out", str(tmp_path / "d9")], "quality 9 not available (choose from 1..3)"),
                          (["--out", str(photo_file)], f"--out must be a folder: {photo_file} is a file")):
        assert main(["demo", "--model", str(tiny_weights), *argv]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.strip() == f"lic: error: {message}"
    assert not (tmp_path / "d0").exists() and not (tmp_path / "d9").exists()


def test_decompress_writes_formats_pillow_only_writes(tmp_path, lic_file, capsys):
    """The format check writes a probe and reads it back; a format Pillow cannot read back (PDF) is written
    unchecked rather than refused."""
    out = tmp_path / "out.pdf"
    assert main(["decompress", str(lic_file), "-o", str(out), "--quiet"]) == 0
    assert out.read_bytes().startswith(b"%PDF")


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    """A PNG whose header claims 40000 x 30000 pixels (more than lic codes) is refused from its header: nothing
    is decoded or written."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = tmp_path / "huge.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 30000, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    rc, _, err = run("compress", png, "-o", tmp_path / "huge.lic")
    one_line_error(rc, err)
    assert "more than 1,073,741,824 pixels" in err and not (tmp_path / "huge.lic").exists()
