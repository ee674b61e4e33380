"""Bounded parameters keep learning: lower_bound, GDN, and the Gaussian conditional's scale bound."""

import torch

from lic.entropy.gaussian import SCALE_MIN, gaussian_likelihood
from lic.layers import GDN
from lic.layers.bound import lower_bound


def test_lower_bound_values_are_clamp_min_and_gradient_points_back_up():
    x = torch.tensor([-1.0, 0.5, 1.0, 2.0, 0.2], requires_grad=True)
    y = lower_bound(x, 1.0)
    assert torch.equal(y.detach(), torch.clamp_min(x.detach(), 1.0))
    # loss gradient +1 on each output: descent would lower x; only entries at or above the bound move
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]
    x.grad = None
    # gradient -1: descent raises x, so entries below the bound get it too (clamp_min gives them 0)
    (-lower_bound(x, 1.0)).sum().backward()
    assert x.grad.tolist() == [-1.0] * 5


def test_gdn_entries_pushed_below_their_bound_come_back():
    """Off-diagonal γ entries start at their bound. A loss that first pushes them down, then wants
    cross-channel normalization, must be able to raise them again (with clamp_min they stayed dead)."""
    torch.manual_seed(0)
    gdn = GDN(4)
    x = torch.randn(2, 4, 8, 8)
    off = ~torch.eye(4, dtype=torch.bool)
    opt = torch.optim.Adam(gdn.parameters(), lr=1e-2)
    for sign in (-1.0, 1.0):  # -1: maximise the output (smaller γ); +1: minimise it (larger γ)
        for _ in range(20):
            opt.zero_grad()
            (sign * gdn(x).square().mean()).backward()
            opt.step()
        if sign < 0:
            assert (gdn.gamma.detach()[off] < gdn.gamma_bound).all()
    assert (gdn.gamma.detach()[off] > gdn.gamma_bound).all()


def test_gdn_settle_bounds_keeps_the_function():
    torch.manual_seed(1)
    gdn = GDN(6, inverse=True)
    with torch.no_grad():
        gdn.gamma.sub_(0.3 * torch.rand(6, 6))  # many entries below the bound, as in weights trained before
        gdn.beta[0] = -0.5
    x = torch.randn(1, 6, 5, 7)
    before = gdn(x)
    gdn.settle_bounds()
    assert (gdn.gamma >= gdn.gamma_bound).all() and (gdn.beta >= gdn.beta_bound).all()
    assert torch.equal(gdn(x), before)


def test_a_scale_predicted_below_the_table_can_still_grow():
    """A latent of 1 with a predicted scale below the table costs many bits; the rate must pull the scale up."""
    log_scale = torch.tensor([-6.0], requires_grad=True)  # exp(-6) ≈ 0.0025 < SCALE_MIN
    assert float(torch.exp(log_scale.detach())) < SCALE_MIN
    rate = -torch.log2(gaussian_likelihood(torch.tensor([1.0]), torch.exp(log_scale))).sum()
    rate.backward()
    assert float(log_scale.grad) < 0  # descent raises the scale
