"""Chapters 4-5: sparsity and contraction penalties, the shallow model, code metrics.

Every penalty is checked against an independent computation: hand-computed
values, torch.distributions' Bernoulli KL, and torch.autograd.functional.jacobian.
"""

import math

import pytest
import torch
from torch.distributions import Bernoulli, kl_divergence

from aelib import losses, metrics, models, train


def shallow(**kw):
    kw.setdefault("input_shape", (1, 4, 4))
    kw.setdefault("latent_dim", 6)
    return models.from_config(models.ShallowConfig(**kw), seed=0).double()


# ----------------------------------------------------------------- sparsity penalties

def test_l1_activity_by_hand_and_independent_of_batch_size():
    h = torch.tensor([[0.5, -1.0, 0.0], [0.25, 0.25, 1.0]])
    assert losses.l1_activity(h).item() == pytest.approx((1.5 + 1.5) / 2)
    assert losses.l1_activity(torch.cat([h, h, h])).item() == pytest.approx(1.5)


def test_kl_sparsity_by_hand_and_against_torch_distributions():
    h = torch.tensor([[0.1, 0.8], [0.3, 0.4]])  # unit means 0.2 and 0.6
    rho = 0.05
    hand = sum(rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q)) for q in (0.2, 0.6))
    assert losses.kl_sparsity(h, rho).item() == pytest.approx(hand, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    h = torch.rand(64, 30, generator=g, dtype=torch.float64)
    reference = kl_divergence(Bernoulli(probs=torch.full((30,), 0.1, dtype=torch.float64)),
                              Bernoulli(probs=h.mean(0))).sum()
    assert losses.kl_sparsity(h, 0.1).item() == pytest.approx(reference.item(), rel=1e-10)


def test_kl_sparsity_is_zero_at_target_and_finite_for_saturated_units():
    assert losses.kl_sparsity(torch.full((5, 3), 0.2), 0.2).item() == pytest.approx(0.0, abs=1e-7)
    for value in (0.0, 1.0):  # rho_hat clamped: large but finite, and differentiable
        h = torch.full((4, 2), value, requires_grad=True)
        out = losses.kl_sparsity(h, 0.05)
        assert math.isfinite(out.item()) and out.item() > 0.5
        out.backward()
        assert torch.isfinite(h.grad).all()


@pytest.mark.parametrize("rho", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_kl_sparsity_rejects_rho_outside_open_unit_interval(rho):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        losses.kl_sparsity(torch.rand(3, 4), rho)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        losses.sparse_objective("kl", 0.1, rho=rho)


def test_penalties_reject_wrong_shapes_and_ranges():
    for fn in (losses.l1_activity, lambda h: losses.kl_sparsity(h, 0.05)):
        with pytest.raises(ValueError, match=r"codes of shape \(N, units\).*h.flatten\(1\)"):
            fn(torch.rand(2, 1, 4, 4))
        with pytest.raises(ValueError, match=r"codes of shape \(N, units\)"):
            fn(torch.rand(5))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 1\].*sigmoid"):
        losses.kl_sparsity(torch.randn(4, 3) * 3, 0.05)
    with pytest.raises(ValueError, match="unknown sparsity penalty 'l2'"):
        losses.sparse_objective("l2", 0.1)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        losses.sparse_objective("l1", -1.0)


def test_sparse_objective_adds_weighted_penalty_on_the_code():
    model = shallow()
    x = torch.rand(8, 1, 4, 4, dtype=torch.float64)
    out = model(x)
    for penalty, fn in (("l1", losses.l1_activity), ("kl", lambda h: losses.kl_sparsity(h, 0.1))):
        objective = losses.sparse_objective(penalty, 0.5, rho=0.1)
        loss, parts = objective(model, x)
        assert parts["sparsity"].item() == pytest.approx(fn(out.z).item())
        assert loss.item() == pytest.approx(losses.mse(out.x_hat, x).item() + 0.5 * parts["sparsity"].item())
    keys = {losses.sparse_objective(p, w, rho=r).cache_key
            for p, w, r in [("l1", 0.1, 0.05), ("kl", 0.1, 0.05), ("kl", 0.1, 0.1), ("kl", 0.2, 0.05)]}
    assert len(keys) == 4


def test_weight_l1_and_l1l2_objective():
    model = shallow()
    hand = sum(p.abs().sum() for p in model.parameters() if p.dim() >= 2)
    assert losses.weight_l1(model).item() == pytest.approx(hand.item())
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64)
    loss, parts = losses.reconstruction_objective(weight_decay=0.1, weight_l1_penalty=0.2)(model, x)
    assert parts["reg"].item() == pytest.approx(losses.weight_l2(model).item())
    assert parts["weight_l1"].item() == pytest.approx(hand.item())
    expected = parts["recon"] + 0.1 * parts["reg"] + 0.2 * parts["weight_l1"]
    assert loss.item() == pytest.approx(expected.item())
    keys = {losses.reconstruction_objective(weight_decay=a, weight_l1_penalty=b).cache_key
            for a, b in [(0, 0), (0.1, 0), (0, 0.1), (0.1, 0.1)]}
    assert len(keys) == 4
    with pytest.raises(ValueError, match="weight_l1_penalty must be >= 0"):
        losses.reconstruction_objective(weight_l1_penalty=-1)


# ----------------------------------------------------------------- the shallow model

def test_tied_decoder_is_w_transpose_h():
    model = shallow(tied=True, output_activation=None)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    h = model.encode(x)
    w, c = model.encoder_weight, model.output_bias  # (K, D), (D,)
    for n in range(3):  # one column code at a time: x_hat = W^T h + c
        column = w.T @ h[n].unsqueeze(1) + c.unsqueeze(1)  # (D, 1)
        assert torch.allclose(model.decode(h[n:n + 1]).flatten(), column.flatten())
    with pytest.raises(RuntimeError):  # the source's W h^T does not even have matching shapes
        w @ h[0].unsqueeze(0).T
    k, d = w.shape
    assert models.count_parameters(model) == k * d + k + d
    assert models.count_parameters(shallow()) == 2 * k * d + k + d
    assert torch.equal(model.decoder_weight, w.T)


def test_shallow_config_checks_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1"):
        models.ShallowConfig(latent_dim=0)
    with pytest.raises(ValueError, match="not a known activation"):
        models.ShallowConfig(activation="softplus")
    with pytest.raises(ValueError, match="tied must be True or False"):
        models.ShallowConfig(tied="yes")
    for tied in (False, True):
        model = shallow(tied=tied)
        again = models.from_config(models.config_to_dict(model.config))
        assert type(again) is models.ShallowAutoencoder and again.config == model.config
        path = train.save_checkpoint(tmp_path / f"m{tied}.pt", model)
        train.load_checkpoint(path, again.double())
        for a, b in zip(model.parameters(), again.parameters()):
            assert torch.equal(a, b)


def test_from_config_seed_fixes_the_initial_weights_and_spares_the_global_rng():
    config = models.ShallowConfig(latent_dim=5, input_shape=(1, 4, 4))
    state = torch.get_rng_state()
    a, b = models.from_config(config, seed=7), models.from_config(config, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.encoder_weight, b.encoder_weight)
    assert not torch.equal(a.encoder_weight, models.from_config(config, seed=8).encoder_weight)


# ----------------------------------------------------------------- contraction

def _jacobians(fn, x):
    """Reference Jacobians (N, K, D), one example at a time, by torch.autograd.functional."""
    return torch.stack([torch.autograd.functional.jacobian(lambda v: fn(v.view(1, *x.shape[1:]))[0],
                                                           x[n].flatten()) for n in range(len(x))])


def test_closed_form_and_exact_penalties_agree_with_autograd_jacobian():
    model = shallow()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        model.hidden.weight.mul_(4)  # spread the sigmoid's outputs over its range
    x = torch.rand(5, 1, 4, 4, generator=g, dtype=torch.float64)
    reference = _jacobians(model.encode, x).square().sum(dim=(1, 2))
    closed = losses.sigmoid_jacobian_norm(model.encode(x), model.encoder_weight)
    assert torch.allclose(closed, reference, rtol=1e-5, atol=1e-8)
    for method in ("sigmoid", "exact"):
        assert torch.allclose(losses.contractive_penalty(model, x, method), reference, rtol=1e-5)


def test_exact_jacobian_of_a_deep_encoder():
    model = models.from_config(models.MLPConfig(latent_dim=3, hidden_dims=(7,), activation="tanh",
                                                input_shape=(1, 4, 4)), seed=1).double()
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64)
    assert torch.allclose(losses.encoder_jacobian(model, x), _jacobians(model.encode, x), atol=1e-10)
    with pytest.raises(TypeError, match="method='sigmoid' needs an encoder that is one sigmoid layer"):
        losses.contractive_penalty(model, x, "sigmoid")
    with pytest.raises(TypeError, match="one sigmoid layer"):
        losses.contractive_penalty(shallow(activation="relu"), x, "sigmoid")
    one_layer = models.from_config(models.MLPConfig(latent_dim=3, hidden_dims=(), code_activation="sigmoid",
                                                    input_shape=(1, 4, 4)), seed=2).double()
    assert torch.allclose(losses.contractive_penalty(one_layer, x, "sigmoid"),
                          losses.contractive_penalty(one_layer, x, "exact"))
    with pytest.raises(ValueError, match="unknown method 'fast'"):
        losses.contractive_penalty(model, x, "fast")


def test_projection_estimate_is_unbiased_within_its_stated_variance():
    model = shallow()
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    jac = _jacobians(model.encode, x)
    exact = jac.square().sum(dim=(1, 2))
    jjt = jac @ jac.transpose(1, 2)
    draws = 4000
    std_error = (2 * jjt.square().sum(dim=(1, 2)) / draws).sqrt()  # stated variance / draws
    g = torch.Generator().manual_seed(0)
    estimate = losses.contractive_penalty(model, x, "projection", n_projections=draws, generator=g)
    assert ((estimate - exact).abs() < 4 * std_error).all()
    one = torch.stack([losses.contractive_penalty(model, x, "projection", generator=g) for _ in range(400)])
    assert torch.allclose(one.var(dim=0), 2 * jjt.square().sum(dim=(1, 2)), rtol=0.3)
    with pytest.raises(ValueError, match="n_projections must be an integer >= 1"):
        losses.contractive_penalty(model, x, "projection", n_projections=0)


def test_contractive_objective_trains_and_evaluates_without_gradients():
    x = torch.rand(16, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for method in losses.CONTRACTIVE_METHODS:
        model = shallow()
        objective = losses.contractive_objective(0.5, method)
        loss, parts = objective(model, x)
        recon = losses.mse(model(x).x_hat, x)
        assert loss.item() == pytest.approx(recon.item() + 0.5 * parts["jacobian"].item())
        loss.backward()
        assert model.hidden.weight.grad is not None and model.hidden.weight.grad.abs().sum() > 0
        values = train.evaluate(model, x, objective)
        assert math.isfinite(values["jacobian"].item())
    with pytest.raises(TypeError, match="sigmoid"):
        losses.contractive_objective(0.1)(shallow(activation="tanh"), x)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        losses.contractive_objective(-0.1)


def test_sigmoid_jacobian_norm_checks_shapes():
    with pytest.raises(ValueError, match=r"weight must be \(K, D\) with K = 3"):
        losses.sigmoid_jacobian_norm(torch.rand(2, 3), torch.rand(4, 16))


# ----------------------------------------------------------------- code metrics

def test_sparsity_stats_by_hand():
    h = torch.tensor([[0.0, 1.0, 0.2], [0.01, 0.5, 0.0]])
    stats = metrics.sparsity_stats(h, threshold=0.05)
    assert stats["mean_activation"] == pytest.approx(1.71 / 6)
    assert stats["near_zero"] == pytest.approx(3 / 6)
    assert stats["lifetime"].tolist() == [0.0, 1.0, 0.5]
    assert stats["dead"] == 1 and stats["always_on"] == 1


def test_sensitivity_and_singular_values_of_a_linear_encoder():
    model = shallow(activation=None)
    w = model.encoder_weight.detach()
    x = torch.rand(6, 1, 4, 4, dtype=torch.float64)
    sv = metrics.jacobian_singular_values(model, x)
    assert sv.shape == (6, 6)
    assert torch.allclose(sv, torch.linalg.svdvals(w).expand(6, -1))
    radii = [0.01, 1.0]
    got = metrics.code_sensitivity(model, x, radii, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    for r, value in zip(radii, got):  # linear: ||W e|| / ||e|| for the same draws
        e = torch.randn(x.shape, generator=g).double().flatten(1)
        assert value == pytest.approx(float(((e @ w.T).norm(dim=1) / e.norm(dim=1)).mean()), rel=1e-9)
    with pytest.raises(ValueError, match="radii must be a non-empty list of positive norms"):
        metrics.code_sensitivity(model, x, [0.0])


def test_linear_probe_separates_separable_data_and_checks_shapes():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    f = torch.randn(200, 5, generator=g) + 6 * y.unsqueeze(1)
    assert metrics.linear_probe(f[:100], y[:100], f[100:], y[100:]) == 1.0
    with pytest.raises(ValueError, match=r"flatten images with x.flatten\(1\)"):
        metrics.linear_probe(torch.rand(10, 1, 2, 2), y[:10], f[:10], y[:10])
    with pytest.raises(ValueError, match="differ in width"):
        metrics.linear_probe(f[:10], y[:10], f[:10, :3], y[:10])


def test_spectra_axis_stops_eight_decades_below_the_top():
    from aelib import plot

    sv = torch.logspace(0, -40, 30, dtype=torch.float64).repeat(5, 1)  # round-off tail
    fig = plot.spectra({"model": sv})
    bottom, top = fig.axes[0].get_ylim()
    assert 1e-8 <= bottom < 1e-7 and top >= 1.0
    fine = torch.logspace(0, -3, 30, dtype=torch.float64).repeat(5, 1)  # nothing to cut
    bottom_fine, _ = plot.spectra({"model": fine}).axes[0].get_ylim()
    assert bottom_fine <= 1e-3
    plot.plt.close("all")
