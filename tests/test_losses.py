"""The losses against hand-computed residuals (method.md 1, 2.3 and 4)."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline_lib.core.losses import OT_MODES, amortized_predictor, detailed_balance, masked_mse, outcome_teleportation

LOG_EPS = -10.0


def f(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def b(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool)


def test_detailed_balance_hand_values() -> None:
    # move: 1 - 0.2 - (0.5 - 0.7) = 1.0; stop: 0.5 - 0.1 - log R = 0.4 - 2 = -1.6 (log_f_next ignored)
    res = detailed_balance(f(1.0, 0.5), f(-0.2, -0.1), f(0.5, 9.0), f(-0.7, 0.0), b(False, True), f(3.0, 2.0))
    assert torch.allclose(res, f(1.0, -1.6))


def test_detailed_balance_zero_at_optimum() -> None:
    # 1-D grid with two cells: R(0) = 1, R(1) = 3, Z = 4. F(s0) = 4, P_F(stop|s0) = 1/4, P_F(move|s0) = 3/4,
    # F(s1) = 3, P_F(stop|s1) = 1, one parent so P_B = 1. Transitions: s0 stop, s0 -> s1, s1 stop.
    log_f = f(math.log(4), math.log(4), math.log(3))
    log_pf = f(math.log(0.25), math.log(0.75), 0.0)
    log_f_next = f(math.log(4), math.log(3), math.log(3))
    log_pb = f(0.0, 0.0, 0.0)
    is_stop = b(True, False, True)
    log_r = f(0.0, 0.0, math.log(3))  # per transition: R of the terminal of its trajectory (move row unused)
    res = detailed_balance(log_f, log_pf, log_f_next, log_pb, is_stop, log_r)
    assert torch.allclose(res, torch.zeros(3, dtype=torch.float64), atol=1e-12)


# One trajectory's transitions, shared by the OT tests: three moves then stop.
LOG_F = f(0.0, -0.3, -0.9, -1.2)
LOG_PF = f(-0.5, -0.4, -0.2, -0.6)
LOG_F_NEXT = f(-0.3, -0.9, -1.2, -1.2)
LOG_PB = f(0.0, -0.7, -0.7, 0.0)
IS_STOP = b(False, False, False, True)
MOVE_TARGET = LOG_F_NEXT + LOG_PB  # (-0.3, -1.6, -1.9, -1.2) for the moves


def ot(mode: str, success, reach, reach_next):
    return outcome_teleportation(LOG_F, LOG_PF, LOG_F_NEXT, LOG_PB, IS_STOP, success, reach, reach_next, mode,
                                 LOG_EPS)


@pytest.mark.parametrize("mode", OT_MODES)
def test_ot_success_equals_db_with_terminal_zero(mode: str) -> None:
    n = len(LOG_F)
    res, mask = ot(mode, b(*[True] * n), b(*[True] * n), b(*[True] * n))
    # hand: 0 - 0.5 + 0.3 = -0.2; -0.3 - 0.4 + 1.6 = 0.9; -0.9 - 0.2 + 1.9 = 0.8; stop: -1.2 - 0.6 - 0 = -1.8
    expected = f(-0.2, 0.9, 0.8, -1.8)
    assert torch.allclose(res, expected)
    db = detailed_balance(LOG_F, LOG_PF, LOG_F_NEXT, LOG_PB, IS_STOP, torch.zeros(n, dtype=torch.float64))
    assert torch.allclose(res, db)
    assert mask.all()


# A failed trajectory: y reachable before and after move 0, move 1 is the culprit (y unreachable after it),
# move 2 and the stop start from states where y is already unreachable.
FAIL = b(False, False, False, False)
REACH = b(True, True, False, False)
REACH_NEXT = b(True, False, False, False)


def test_ot_reachable_failed() -> None:
    res, mask = ot("reachable", FAIL, REACH, REACH_NEXT)
    assert mask.tolist() == [True, True, False, False]
    # move 0: plain DB (-0.2); culprit: log F + log P_F - log_eps = -0.3 - 0.4 + 10 = 9.3
    assert torch.allclose(res[mask], f(-0.2, 9.3))
    assert masked_mse(res, mask).item() == pytest.approx((0.2**2 + 9.3**2) / 2)


def test_ot_literal_failed() -> None:
    res, mask = ot("literal", FAIL, REACH, REACH_NEXT)
    assert mask.all()
    # every move target gets + log_eps: DB residual + 10; the stop target is log_eps: -1.8 + 10
    assert torch.allclose(res, f(9.8, 10.9, 10.8, 8.2))


def test_ot_off_failed() -> None:
    res, mask = ot("off", FAIL, REACH, REACH_NEXT)
    assert mask.all()
    # moves keep plain DB, only the stop is a failure
    assert torch.allclose(res, f(-0.2, 0.9, 0.8, 8.2))


def test_ot_reachable_early_stop_is_culprit() -> None:
    # stopped at x < y (x != y, y still reachable from x): the stop itself is the culprit
    res, mask = ot("reachable", FAIL, b(True, True, True, True), b(True, True, True, False))
    assert mask.all()
    assert torch.allclose(res, f(-0.2, 0.9, 0.8, 8.2))


def test_ot_mixed_batch() -> None:
    # two trajectories in one flat batch: rows 0-1 succeed, rows 2-3 fail (row 2 culprit, row 3 unreachable)
    success = b(True, True, False, False)
    reach = b(True, True, True, False)
    reach_next = b(True, True, False, False)
    expected = {
        "reachable": (f(-0.2, 0.9, -0.9 - 0.2 + 10), [True, True, True, False]),
        "literal": (f(-0.2, 0.9, 10.8, 8.2), [True] * 4),
        "off": (f(-0.2, 0.9, 0.8, 8.2), [True] * 4),
    }
    for mode, (values, mask_expected) in expected.items():
        res, mask = ot(mode, success, reach, reach_next)
        assert mask.tolist() == mask_expected, mode
        assert torch.allclose(res[mask], values), mode


@pytest.mark.parametrize("mode", OT_MODES)
def test_ot_zero_at_optimum(mode: str) -> None:
    # a perfect y-conditioned chain s0 -> s1 -> stop at y = s1: F = 1 everywhere, P_F = 1, P_B = 1
    z = torch.zeros(2, dtype=torch.float64)
    res, mask = outcome_teleportation(z, z, z, z, b(False, True), b(True, True), b(True, True), b(True, True),
                                      mode, LOG_EPS)
    assert torch.equal(res, z) and mask.all()


def test_ot_reachable_zero_when_culprit_has_eps_flow() -> None:
    # F(s|y) P_F(s'|s,y) = eps on the culprit transition: the reachable residual vanishes there
    res, mask = outcome_teleportation(f(-4.0), f(-6.0), f(-3.0), f(0.0), b(False), b(False), b(True), b(False),
                                      "reachable", LOG_EPS)
    assert res.item() == 0.0 and mask.item()


@pytest.mark.parametrize("mode", ["Reachable", "on", "", "none"])
def test_ot_unknown_mode(mode: str) -> None:
    with pytest.raises(ValueError, match="ot: expected one of"):
        ot(mode, FAIL, REACH, REACH_NEXT)


def test_amortized_predictor_hand_value() -> None:
    # log(0.6 * 0.5) - log(2 * 0.3 * 0.25) = log(0.3 / 0.15) = log 2
    res = amortized_predictor(f(math.log(0.6)), f(math.log(0.5)), f(math.log(2.0)), f(math.log(0.3)),
                              f(math.log(0.25)))
    assert res.item() == pytest.approx(math.log(2.0))
    zero = amortized_predictor(f(math.log(0.15)), f(0.0), f(math.log(2.0)), f(math.log(0.3)), f(math.log(0.25)))
    assert zero.item() == pytest.approx(0.0, abs=1e-12)


def test_masked_mse_hand_values() -> None:
    res = f(1.0, 2.0, -3.0, 4.0)
    assert masked_mse(res).item() == pytest.approx(30 / 4)
    assert masked_mse(res, b(True, False, True, False)).item() == pytest.approx(5.0)
    assert masked_mse(res, b(True, True, True, True)).item() == pytest.approx(7.5)


def test_masked_mse_empty_mask_is_zero_with_gradient() -> None:
    res = f(1.0, 2.0).requires_grad_(True)
    loss = masked_mse(res, b(False, False))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(res.grad, torch.zeros(2, dtype=torch.float64))


def test_masked_mse_gradient_only_on_mask() -> None:
    res = f(1.0, 2.0, 3.0).requires_grad_(True)
    masked_mse(res, b(True, False, True)).backward()
    assert torch.allclose(res.grad, f(1.0, 0.0, 3.0))  # d/dr (r0^2 + r2^2)/2 = r
