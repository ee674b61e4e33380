"""What every layered model's file must do, whatever the model (the progressive codec's iterations, the scalable
codec's layers): each prefix of the file, cut at a chunk boundary, decodes to the encoder's own reconstruction."""

import warnings

import numpy as np
import pytest
import torch

import lic
from lic import codec, container
from lic.imageio import from_tensor, prepare, to_tensor


def boundaries(data: bytes) -> list[int]:
    """File offsets just after each chunk (checked against the layout in test_container)."""
    ends = container.read(data).ends
    assert ends[-1] == len(data)
    return ends


def reconstructions(model, img, n):
    """The encoder's result for ``n`` layers and its reconstruction after each layer, as 8-bit arrays."""
    with torch.no_grad():
        comp = model.compress(to_tensor(prepare(img).rgb), n, reconstruct=True)
    return comp, [from_tensor(x) for x in comp.extra["x_hats"]]


def check_every_prefix(model, image, unit: str):
    """Codes ``image`` with all of ``model``'s layers, then for each k: decoding k layers of the file, and the
    file cut after its k-th chunk (``head -c N``, which warns as truncated unless k is all), give the
    encoder's k-th reconstruction; coding k layers in the first place gives the same first k chunks; asking
    for more layers than the file holds decodes them all, with a warning naming the ``unit``.  Returns the
    encoder's result and reconstructions for model-specific checks."""
    n = model.qualities[-1]
    data = lic.compress(image, model=model, quality=n)
    comp, recs = reconstructions(model, image, n)
    assert container.read(data).model_chunks() == comp.chunks
    ends = boundaries(data)
    for k in range(1, n + 1):
        by_layers = np.asarray(codec.decode(data, model=model, layers=k))
        assert np.array_equal(by_layers, recs[k - 1]), k
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            by_cut = np.asarray(codec.decode(data[:ends[k - 1]], model=model))
        assert np.array_equal(by_cut, by_layers), k
        assert (k < n) == any("truncated" in str(w.message) for w in caught)
        assert container.read(lic.compress(image, model=model, quality=k)).model_chunks() == comp.chunks[:k]
    with pytest.warns(UserWarning, match=f"the file holds {n} {unit}"):
        assert np.array_equal(np.asarray(lic.decompress(data, model=model, layers=99)), recs[-1])
    return comp, recs


def train_steps(model, steps: int, size: int):
    """A few Adam steps of ``model``'s own training loss (all its layers) on random ``size``² crops: every
    gradient and every loss term stays finite, and each step's forward pass returns one reconstruction per
    layer.  Returns the model, still in training mode."""
    torch.manual_seed(0)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(2, 3, size, size)
    for _ in range(steps):
        q = model.training_quality(None)
        out = model(x, q)
        assert len(out["x_hats"]) == q
        terms = model.training_loss(x, out, q)  # loss, bpp, distortion
        opt.zero_grad()
        terms[0].backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        assert all(np.isfinite(t.item()) for t in terms)
    return model
