"""Preference losses for policy alignment, as pure tensor functions.

- ``diffusion_dpo``: Diffusion-DPO (Wallace et al.) for image and video generators. The chosen and
  rejected latents share the timestep and the noise; the squared error is averaged over every
  non-batch dimension, so an image latent [B, C, H, W] and a video latent [B, C, T, H, W] both give
  one number per sample (the original VideoDPO averaged over [1, 2, 3] of a 5-D latent and left a
  vector per width column, which made its accuracy exceed 1).
- ``dpo``: DPO for VLMs from summed response log-probabilities, with the sigmoid, IPO and hinge
  losses.

Every loss returns the mean loss and the per-pair implicit reward margin; ``implicit_accuracy`` is
the share of pairs whose margin is positive (ties count as not learnt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

DPO_LOSSES = ("sigmoid", "ipo", "hinge")
BETA_DIFFUSION = 5000.0  # beta_dpo of the reference Diffusion-DPO and VideoDPO runs
BETA_VLM = 0.1  # beta of the reference VLM DPO runs


@dataclass
class PreferenceLoss:
    loss: torch.Tensor  # scalar, mean over pairs
    margin: torch.Tensor  # [B]: the implicit reward of chosen minus rejected (positive = preferred)
    chosen_reward: torch.Tensor  # [B]
    rejected_reward: torch.Tensor  # [B]

    @property
    def implicit_accuracy(self) -> float:
        return float((self.margin > 0).float().mean())


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over all non-batch dimensions: [B, ...] -> [B]."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return (pred.float() - target.float()).pow(2).flatten(1).mean(dim=1)


def diffusion_dpo(
    noise: torch.Tensor,
    model_w: torch.Tensor,
    model_l: torch.Tensor,
    ref_w: torch.Tensor,
    ref_l: torch.Tensor,
    beta: float = BETA_DIFFUSION,
    target_l: torch.Tensor | None = None,
) -> PreferenceLoss:
    """-log sigmoid(-beta/2 * [(|e - e_theta(x_w)|^2 - |e - e_ref(x_w)|^2) - (|e - e_theta(x_l)|^2 - |e - e_ref(x_l)|^2)])

    ``noise`` is the one noise added to both latents (at the one timestep); ``model_*`` and ``ref_*``
    are the policy's and the frozen reference's predictions for the chosen (w) and rejected (l)
    latents. For v-prediction models pass the chosen latent's velocity as ``noise`` and the rejected
    one's as ``target_l``."""
    if beta <= 0:
        raise ValueError("beta must be > 0")
    ref_w, ref_l = ref_w.detach(), ref_l.detach()
    target_l = noise if target_l is None else target_l
    mw, ml = per_sample_mse(model_w, noise), per_sample_mse(model_l, target_l)
    rw, rl = per_sample_mse(ref_w, noise), per_sample_mse(ref_l, target_l)
    # the implicit reward of a sample: how much better the policy denoises it than the reference
    chosen, rejected = -0.5 * beta * (mw - rw), -0.5 * beta * (ml - rl)
    margin = chosen - rejected
    return PreferenceLoss(-F.logsigmoid(margin).mean(), margin.detach(), chosen.detach(), rejected.detach())


def dpo(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = BETA_VLM,
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid",
) -> PreferenceLoss:
    """DPO from the summed log-probabilities of each response under the policy and the reference:
    h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l));
    sigmoid: -log sigmoid(beta h); ipo: (h - 1 / (2 beta))^2; hinge: max(0, 1 - beta h)."""
    if beta <= 0:
        raise ValueError("beta must be > 0")
    chosen = policy_chosen.float() - ref_chosen.detach().float()
    rejected = policy_rejected.float() - ref_rejected.detach().float()
    h = chosen - rejected
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)).pow(2)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        raise ValueError(f"loss_type {loss_type!r}: expected one of {DPO_LOSSES}")
    return PreferenceLoss(losses.mean(), (beta * h).detach(), (beta * chosen).detach(), (beta * rejected).detach())


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Summed log-probabilities of the labelled tokens of each row (labels aligned with the inputs;
    the shift to next-token prediction happens here): [B, T, V], [B, T] -> [B]."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != ignore_index
    picked = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)
