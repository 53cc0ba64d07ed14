"""Losses as functions of tensors, each readable against its equation in method.md."""
from __future__ import annotations

import torch

OT_MODES = ("literal", "reachable", "off")


def detailed_balance(log_f: torch.Tensor, log_pf: torch.Tensor, log_f_next: torch.Tensor,
                     log_pb: torch.Tensor, is_stop: torch.Tensor, log_r: torch.Tensor) -> torch.Tensor:
    """DB residuals (method.md 1): log F(s) + log P_F(s'|s) - log F(s') - log P_B(s|s').

    At a stop transition the next "flow" is the reward, F(x -> sink) := R(x).
    """
    target = torch.where(is_stop, log_r, log_f_next + log_pb)
    return log_f + log_pf - target


def outcome_teleportation(log_f: torch.Tensor, log_pf: torch.Tensor, log_f_next: torch.Tensor,
                          log_pb: torch.Tensor, is_stop: torch.Tensor, success: torch.Tensor,
                          reach: torch.Tensor, reach_next: torch.Tensor, mode: str,
                          log_eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """OC-GFN residuals with outcome teleportation (method.md 2.3) and the mask of used transitions.

    ``success`` is per transition: did this trajectory end at its outcome y (R(x|y) = 1)?
    ``reach`` / ``reach_next``: can y still be produced from s / from s' (for stop: s' is the sink,
    reachable iff x = y). Modes:
    - literal: F(s|y) P_F(s'|s,y) = F(s'|y) P_B(s|s',y) R(x|y) on every transition, log 0 := log_eps;
    - off: plain DB, the failure only at the terminal transition;
    - reachable: on the transition after which y became unreachable (the culprit) the target is
      log_eps (true F(s'|y) = 0 there); transitions from already unreachable states are dropped.
    """
    if mode not in OT_MODES:
        raise ValueError(f"ot: expected one of {OT_MODES}, got {mode!r}")
    zero = torch.zeros_like(log_f)
    terminal = torch.where(success, zero, zero + log_eps)
    move = log_f_next + log_pb
    if mode == "literal":
        move = move + torch.where(success, zero, zero + log_eps)
    if mode == "reachable":
        culprit = reach & ~reach_next
        target = torch.where(culprit, zero + log_eps, torch.where(is_stop, terminal, move))
        return log_f + log_pf - target, reach
    target = torch.where(is_stop, terminal, move)
    return log_f + log_pf - target, torch.ones_like(reach)


def amortized_predictor(log_n: torch.Tensor, log_q: torch.Tensor, log_r_y: torch.Tensor,
                        log_f_y: torch.Tensor, log_pf_y: torch.Tensor) -> torch.Tensor:
    """Residual of N(s'|s) Q(y|s,s') = R(y) F(s|y) P_F(s'|s,y) (method.md 4)."""
    return log_n + log_q - log_r_y - log_f_y - log_pf_y


def masked_mse(residual: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared residual over the transitions in ``mask``."""
    if mask is None:
        return residual.pow(2).mean()
    return residual.pow(2).masked_select(mask).mean() if mask.any() else residual.sum() * 0.0
