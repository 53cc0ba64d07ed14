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


def trajectory_balance(log_z: torch.Tensor, log_pf_sum: torch.Tensor, log_pb_sum: torch.Tensor,
                       log_r: torch.Tensor) -> torch.Tensor:
    """TB residuals per trajectory (Malkin et al. 2022): log Z + sum log P_F - log R(x) - sum log P_B."""
    return log_z + log_pf_sum - log_r - log_pb_sum


def subtrajectory_balance(log_flow: torch.Tensor, log_step: torch.Tensor, length: torch.Tensor,
                          lam: float) -> torch.Tensor:
    """SubTB loss (Madan et al. 2023), the lambda-weighted mean over every sub-trajectory i < j of
    (log F(s_i) + sum_{i <= t < j} [log P_F(s_t+1|s_t) - log P_B(s_t|s_t+1)] - log F(s_j))^2.

    ``log_flow`` [B, T+1]: log F along each trajectory, with log R(x) at position ``length`` (the sink after
    stop); ``log_step`` [B, T]: log P_F - log P_B of each transition; ``length`` [B]: transitions per
    trajectory (stop included). Sub-trajectories of each trajectory have weight lambda^(j - i) / (the sum of
    the trajectory's weights), so every trajectory counts once."""
    n_b, n_t = log_step.shape
    cum = torch.cat([torch.zeros_like(log_step[:, :1]), log_step.cumsum(1)], dim=1)  # [B, T+1]
    residual = log_flow[:, :, None] + cum[:, None, :] - cum[:, :, None] - log_flow[:, None, :]  # [B, i, j]
    pos = torch.arange(n_t + 1, device=log_step.device)
    valid = (pos[:, None] < pos[None, :]) & (pos[None, None, :] <= length[:, None, None])
    weight = torch.where(valid, float(lam) ** (pos[None, :] - pos[:, None]).clamp(min=0).to(log_step.dtype), 0.0)
    weight = weight / weight.sum((1, 2), keepdim=True)
    return (weight * residual.pow(2)).sum() / n_b


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
