"""Bjøntegaard deltas and AUC on constructed curves with known answers."""

import math

import numpy as np
import pytest

from lic.bench.bdrate import METHODS, auc, bd_metric, bd_rate


def _log_rate(q):
    """A smooth, monotone RD curve: log(bpp) as a cubic in PSNR."""
    q = np.asarray(q, dtype=float)
    return 0.002 * (q - 30) ** 3 - 0.01 * (q - 30) ** 2 + 0.25 * (q - 30) - 1.0


Q = np.array([28.0, 30.0, 32.0, 34.0, 36.0, 38.0])
R = np.exp(_log_rate(Q))


@pytest.mark.parametrize("method", METHODS)
def test_constant_rate_factor_gives_minus_20_percent(method):
    res = bd_rate(R, Q, 0.8 * R, Q, method)
    assert res.value == pytest.approx(-20.0, abs=1e-6)
    assert (res.lo, res.hi) == (28.0, 38.0)
    assert res.method == method
    # and the other way round: 1/0.8 = +25 %
    assert bd_rate(0.8 * R, Q, R, Q, method).value == pytest.approx(25.0, abs=1e-6)


@pytest.mark.parametrize("method,tol", [("cubic", 1e-6), ("pchip", 0.3)])
def test_minus_20_percent_with_other_sample_points(method, tol):
    qt = np.array([29.0, 31.5, 33.0, 35.5, 37.0, 39.0])  # different qualities, overlapping range
    res = bd_rate(R, Q, 0.8 * np.exp(_log_rate(qt)), qt, method)
    assert res.value == pytest.approx(-20.0, abs=tol)
    assert (res.lo, res.hi) == (29.0, 38.0)


@pytest.mark.parametrize("method", METHODS)
def test_bd_metric_constant_offset(method):
    res = bd_metric(R, Q, R, Q + 0.5, method)
    assert res.value == pytest.approx(0.5, abs=1e-9)
    assert res.lo == pytest.approx(R.min()) and res.hi == pytest.approx(R.max())


def test_cubic_matches_classic_vceg_formula():
    """Independent check against the textbook VCEG-M33 recipe (log10, polyfit, polyint)."""
    rng = np.random.default_rng(1)
    q2 = Q + rng.normal(0, 0.2, Q.shape) + 0.4
    r2 = R * rng.uniform(0.7, 0.95, R.shape)
    p1, p2 = np.polyfit(Q, np.log10(R), 3), np.polyfit(q2, np.log10(r2), 3)
    lo, hi = max(Q.min(), q2.min()), min(Q.max(), q2.max())
    i1 = np.polyval(np.polyint(p1), hi) - np.polyval(np.polyint(p1), lo)
    i2 = np.polyval(np.polyint(p2), hi) - np.polyval(np.polyint(p2), lo)
    expected = (10 ** ((i2 - i1) / (hi - lo)) - 1) * 100
    assert bd_rate(R, Q, r2, q2, "cubic").value == pytest.approx(expected, rel=1e-9)


def test_order_and_duplicates_do_not_matter():
    perm = np.array([3, 0, 5, 1, 4, 2])
    a = bd_rate(R, Q, 0.8 * R, Q, "pchip").value
    b = bd_rate(R[perm], Q[perm], 0.8 * R[::-1], Q[::-1], "pchip").value
    assert a == pytest.approx(b)
    with_dupe = bd_rate(np.r_[R, R[2]], np.r_[Q, Q[2]], 0.8 * R, Q, "pchip").value
    assert with_dupe == pytest.approx(-20.0, abs=1e-6)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(R, Q, R, Q + 20, "pchip")
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(R[:3], Q[:3], R[:3], Q[:3], "cubic")
    assert math.isfinite(bd_rate(R[:3], Q[:3], 0.9 * R[:3], Q[:3], "pchip").value)


def test_auc_on_a_straight_line_and_refuses_to_extrapolate():
    bpp = np.array([0.1, 0.3, 0.6, 1.0, 1.5])
    q = 30 + 4 * bpp  # straight line: PCHIP reproduces it exactly
    res = auc(bpp, q, 0.25, 1.0)
    expected_area = 30 * 0.75 + 2 * (1.0**2 - 0.25**2)
    assert res.area == pytest.approx(expected_area)
    assert res.mean == pytest.approx(expected_area / 0.75)
    assert math.isnan(auc(bpp, q, 0.05, 1.0).area)  # curve starts at 0.1 bpp
    with pytest.raises(ValueError):
        auc(bpp, q, 1.0, 0.5)
