from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)
KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"


@pytest.fixture(scope="session")
def load_tool():
    """Loads a script of tools/ (or of ``folder``, e.g. benchmarks/) as a module:
    ``load_tool("su2020_from_toderici").convert(...)``."""
    import importlib.util

    def load(name: str, folder: str = "tools"):
        path = Path(__file__).resolve().parents[1] / folder / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread (and lose a lot when the CPU is busy)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A small randomly initialised hyperprior saved as a weights file (same code paths as shipped models)."""
    from lic import zoo
    from lic.models import ScaleHyperprior

    torch.manual_seed(0)
    m = ScaleHyperprior(N=16, M=24, lambdas=(0.005, 0.02, 0.08)).eval()
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    zoo.save_weights(m, path, name="tiny-test")
    return path


@pytest.fixture(scope="session")
def tiny(tiny_weights):
    from lic import zoo

    return zoo.load_weights(tiny_weights)


def _crop(a, h, w):
    return np.ascontiguousarray(a[:h, :w])


@pytest.fixture(scope="session")
def photos():
    """Real photos shipped by scikit-image, cropped for speed."""
    from skimage import data

    return {
        "astronaut": Image.fromarray(_crop(data.astronaut(), 192, 256)),
        "coffee": Image.fromarray(_crop(data.coffee(), 200, 168)),
        "chelsea": Image.fromarray(_crop(data.chelsea(), 161, 230)),
    }


@pytest.fixture
def photo_file(tmp_path, photos):
    p = tmp_path / "photo.png"
    photos["astronaut"].save(p)
    return p


@pytest.fixture(scope="session")
def wide_icc():
    """An RGB ICC profile that is not sRGB: Pillow's sRGB profile with its description renamed (ICC v4
    'mluc' text is UTF-16BE).  Made once: every new profile carries its creation time."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return icc.replace("sRGB built-in".encode("utf-16-be"), "Wide built-in".encode("utf-16-be"))
