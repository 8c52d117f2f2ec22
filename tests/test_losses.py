"""Preference losses against hand-computed references on fixed tensors."""

import math

import pytest
import torch

from unireward.train.losses import diffusion_dpo, dpo, per_sample_mse, sequence_logps


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_diffusion_dpo_equals_the_hand_computed_reference_on_images():
    # one pair, latents [1, 1, 1, 2]: noise (0, 0)
    noise = torch.zeros(1, 1, 1, 2)
    model_w, ref_w = torch.tensor([[[[1.0, 1.0]]]]), torch.tensor([[[[2.0, 0.0]]]])
    model_l, ref_l = torch.tensor([[[[3.0, 1.0]]]]), torch.tensor([[[[1.0, 1.0]]]])
    # |e - model_w|^2 = (1 + 1) / 2 = 1, |e - ref_w|^2 = (4 + 0) / 2 = 2
    # |e - model_l|^2 = (9 + 1) / 2 = 5, |e - ref_l|^2 = (1 + 1) / 2 = 1
    # inside = -beta/2 * [(1 - 2) - (5 - 1)] = -beta/2 * (-5) = 2.5 beta
    beta = 0.1
    out = diffusion_dpo(noise, model_w, model_l, ref_w, ref_l, beta=beta)
    assert out.loss.item() == pytest.approx(-math.log(sig(2.5 * beta)), rel=1e-6)
    assert out.margin.tolist() == pytest.approx([2.5 * beta])
    assert out.chosen_reward.tolist() == pytest.approx([-0.5 * beta * (1 - 2)])
    assert out.implicit_accuracy == 1.0


def test_diffusion_dpo_averages_video_latents_over_every_non_batch_dimension():
    g = torch.Generator().manual_seed(0)
    shape = (3, 4, 2, 5, 6)  # [B, C, T, H, W]
    noise, mw, ml, rw, rl = (torch.randn(shape, generator=g) for _ in range(5))
    out = diffusion_dpo(noise, mw, ml, rw, rl, beta=50.0)
    assert out.margin.shape == (3,)  # one number per pair, not one per width column
    ref = []
    for b in range(3):
        m = lambda x: ((x[b] - noise[b]) ** 2).mean().item()  # noqa: E731
        ref.append(-25.0 * ((m(mw) - m(rw)) - (m(ml) - m(rl))))
    assert out.margin.tolist() == pytest.approx(ref, rel=1e-5)
    assert out.loss.item() == pytest.approx(sum(-math.log(sig(x)) for x in ref) / 3, rel=1e-5)
    assert 0.0 <= out.implicit_accuracy <= 1.0


def test_diffusion_dpo_gradients_reach_the_policy_only():
    noise = torch.zeros(2, 1, 2, 2)
    mw = torch.ones(2, 1, 2, 2, requires_grad=True)
    ml = torch.ones(2, 1, 2, 2, requires_grad=True)
    rw = torch.ones(2, 1, 2, 2, requires_grad=True)
    rl = torch.ones(2, 1, 2, 2, requires_grad=True)
    diffusion_dpo(noise, mw, ml, rw, rl).loss.backward()
    assert mw.grad is not None and ml.grad is not None
    assert rw.grad is None and rl.grad is None
    # at equal errors the margin is 0: the loss is log 2 and the gradient pushes chosen's error down
    assert (mw.grad > 0).all() and (ml.grad < 0).all()


def test_mse_shapes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        per_sample_mse(torch.zeros(2, 3), torch.zeros(2, 4))


@pytest.mark.parametrize(
    "loss_type, expected",
    [
        ("sigmoid", lambda h, b: -math.log(sig(b * h))),
        ("ipo", lambda h, b: (h - 1 / (2 * b)) ** 2),
        ("hinge", lambda h, b: max(0.0, 1 - b * h)),
    ],
)
def test_dpo_losses_equal_their_definitions(loss_type, expected):
    pc, pr = torch.tensor([-10.0, -4.0]), torch.tensor([-12.0, -3.0])
    rc, rr = torch.tensor([-11.0, -4.5]), torch.tensor([-11.5, -3.5])
    beta = 0.5
    h = [(-10 + 11) - (-12 + 11.5), (-4 + 4.5) - (-3 + 3.5)]  # [1.5, 0.0]
    out = dpo(pc, pr, rc, rr, beta=beta, loss_type=loss_type)
    assert out.loss.item() == pytest.approx(sum(expected(x, beta) for x in h) / 2, rel=1e-6)
    assert out.margin.tolist() == pytest.approx([beta * x for x in h])
    assert out.implicit_accuracy == 0.5  # a zero margin is not a win


def test_dpo_rejects_unknown_losses_and_bad_beta():
    t = torch.zeros(1)
    with pytest.raises(ValueError, match="expected one of"):
        dpo(t, t, t, t, loss_type="kto")
    with pytest.raises(ValueError, match="beta"):
        dpo(t, t, t, t, beta=0)


def test_sequence_logps_sum_the_labelled_tokens_only():
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]]]))  # [1, 3, 2]
    labels = torch.tensor([[-100, 1, 0]])  # token 1 predicted from position 0, token 0 from position 1
    assert sequence_logps(logits, labels).item() == pytest.approx(math.log(0.5) + math.log(0.25))
    labels = torch.tensor([[-100, -100, 0]])
    assert sequence_logps(logits, labels).item() == pytest.approx(math.log(0.25))
