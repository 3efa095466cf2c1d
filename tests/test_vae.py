"""Chapter 6: the VAE, its losses and its log-likelihood estimates, checked against
torch.distributions, Monte-Carlo estimates and numerical integration."""

import base64
import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from aelib import data, losses, metrics, models, train


def _tiny_vae(latent_dim: int = 2, **kw) -> models.VAE:
    cfg = models.VAEConfig(latent_dim=latent_dim, hidden_dims=(16,), input_shape=(1, 4, 4), **kw)
    return models.from_config(cfg, seed=0)


@pytest.mark.parametrize("config", [
    models.VAEConfig(),
    models.VAEConfig(latent_dim=2, hidden_dims=(64, 32), activation="elu"),
    models.VAEConfig(latent_dim=8, arch="conv", channels=(4, 8)),
    models.VAEConfig(latent_dim=3, likelihood="gaussian", sigma=0.2),
])
def test_forward_shapes_and_record(config):
    model = models.VAE(config)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        out = model(x)
    k = config.latent_dim
    assert out.x_hat.shape == x.shape
    assert out.z.shape == out.mu.shape == out.logvar.shape == (5, k)
    assert 0 <= float(out.x_hat.min()) and float(out.x_hat.max()) <= 1
    mu, logvar = model.encode_distribution(x)
    assert torch.equal(model.encode(x), mu) and torch.equal(out.mu, mu)
    assert model.sample(7).shape == (7, 1, 28, 28)


def test_pytorch_examples_vae_has_its_parameter_count():
    # fc1 784-400, fc21 + fc22 400-20 each, fc3 20-400, fc4 400-784
    model = models.VAE(models.VAEConfig(latent_dim=20, hidden_dims=(400,)))
    expected = (784 * 400 + 400) + 2 * (400 * 20 + 20) + (20 * 400 + 400) + (400 * 784 + 784)
    assert models.count_parameters(model) == expected == 652_824


def test_clear_errors():
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1"):
        models.VAEConfig(latent_dim=0)
    with pytest.raises(ValueError, match="likelihood='poisson' is unknown"):
        models.VAEConfig(likelihood="poisson")
    with pytest.raises(ValueError, match="arch='rnn' is unknown"):
        models.VAEConfig(arch="rnn")
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        models.VAEConfig(likelihood="gaussian", sigma=0)
    with pytest.raises(ValueError, match="divisible"):
        models.VAEConfig(arch="conv", channels=(4, 4, 4))
    model = models.VAE(models.VAEConfig(latent_dim=16))
    with pytest.raises(ValueError, match=r"codes of shape \(N, 16\)"):
        model.decode(torch.rand(3, 20))
    with pytest.raises(ValueError, match="looks flattened"):
        model(torch.rand(3, 784))
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        model.sample(0)
    with pytest.raises(TypeError, match="needs a model whose output has mu and logvar"):
        losses.vae_objective()(models.reference_s0(), torch.rand(2, 1, 28, 28))
    with pytest.raises(TypeError, match="needs a VAE"):
        metrics.iwae_log_likelihood(models.reference_s0(), torch.rand(2, 1, 28, 28), k=2)
    with pytest.raises(ValueError, match="beta must be a number >= 0"):
        losses.vae_objective(beta=-1)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        metrics.iwae_log_likelihood(model, torch.rand(2, 1, 28, 28), k=0)


def test_config_round_trip_and_seeded_init():
    cfg = models.VAEConfig(latent_dim=5, arch="conv", channels=(4, 8), likelihood="gaussian")
    d = models.config_to_dict(cfg)
    assert d["family"] == "vae" and models.config_from_dict(d) == cfg
    a, b = models.from_config(d, seed=3), models.from_config(cfg, seed=3)
    assert isinstance(a, models.VAE)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 8, generator=g) * 2, torch.randn(64, 8, generator=g) * 1.5
    reference = D.kl_divergence(D.Normal(mu, (0.5 * logvar).exp()), D.Normal(0.0, 1.0))
    assert torch.allclose(losses.gaussian_kl(mu, logvar, per_unit=True), reference, atol=1e-5, rtol=1e-5)
    assert torch.allclose(losses.gaussian_kl(mu, logvar), reference.sum(1), atol=1e-5, rtol=1e-5)
    assert float(losses.gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max()) == 0.0
    with pytest.raises(ValueError, match="logvar must have mu's shape"):
        losses.gaussian_kl(mu, logvar[:, :3])


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.tensor([[0.7, -1.2, 0.0]]), torch.tensor([[-1.0, 0.5, -3.0]])
    q = D.Normal(mu, (0.5 * logvar).exp())
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 3, generator=g)
    log_ratio = (q.log_prob(z) - D.Normal(0.0, 1.0).log_prob(z)).sum(1)  # (S,)
    estimate, stderr = float(log_ratio.mean()), float(log_ratio.std() / math.sqrt(len(log_ratio)))
    assert abs(estimate - float(losses.gaussian_kl(mu, logvar))) < 4 * stderr


def test_log_likelihoods_match_torch_distributions():
    g = torch.Generator().manual_seed(2)
    probs = torch.rand(6, 1, 4, 4, generator=g) * 0.98 + 0.01
    x_bin = (torch.rand(6, 1, 4, 4, generator=g) > 0.5).float()
    ref = D.Bernoulli(probs=probs).log_prob(x_bin).flatten(1).sum(1)
    assert torch.allclose(losses.log_likelihood(probs, x_bin, "bernoulli"), ref, atol=1e-4)
    x = torch.rand(6, 1, 4, 4, generator=g)
    ref = D.Normal(probs, 0.3).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(losses.log_likelihood(probs, x, "gaussian", sigma=0.3), ref, atol=1e-4)
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        losses.log_likelihood(probs, x * 3, "bernoulli")


def test_negative_elbo_parts_add_up_in_nats_per_example():
    g = torch.Generator().manual_seed(3)
    x, x_hat = torch.rand(4, 1, 4, 4, generator=g), torch.rand(4, 1, 4, 4, generator=g)
    mu, logvar = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g)
    parts = losses.negative_elbo(x_hat, x, mu, logvar, beta=4.0)
    assert all(v.shape == (4,) for v in parts.values())
    assert torch.allclose(parts["loss"], parts["recon"] + 4.0 * parts["kl"])
    # recon is the summed binary cross-entropy of each image, not its mean
    bce_sum = torch.nn.functional.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1)
    assert torch.allclose(parts["recon"], bce_sum)


def test_reparameterisation_passes_gradients_and_sampling_does_not():
    mu = torch.tensor([0.5, -1.0], requires_grad=True)
    logvar = torch.tensor([0.2, -0.4], requires_grad=True)
    g = torch.Generator().manual_seed(4)
    z = models.VAE.reparameterize(mu, logvar, g)
    z.square().sum().backward()
    eps = torch.randn(2, generator=torch.Generator().manual_seed(4))
    std = (0.5 * logvar.detach()).exp()
    assert torch.allclose(z.detach(), mu.detach() + std * eps)
    assert torch.allclose(mu.grad, 2 * z.detach())  # dz/dmu = 1
    assert torch.allclose(logvar.grad, 2 * z.detach() * eps * 0.5 * std)  # dz/dlogvar
    assert not D.Normal(mu, std).sample().requires_grad


def test_vae_objective_trains_and_reports_nats_per_image():
    torch.manual_seed(0)
    x = (data.load("digits").x_train[:256] > 0.5).float()
    model = models.VAE(models.VAEConfig(latent_dim=4, hidden_dims=(64,)))
    history = train.fit(model, x, losses.vae_objective(), num_epochs=8, batch_size=64,
                        lr=3e-3, seed=0, device="cpu", progress=False)
    loss, recon, kl = (history["train"][k] for k in ("loss", "recon", "kl"))
    assert loss[-1] < 0.7 * loss[0]
    assert all(abs(a - (b + c)) < 1e-3 * a for a, b, c in zip(loss, recon, kl))
    assert kl[-1] > 0.5  # the code carries information about the input


def _log_px_by_quadrature(model: models.VAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log of the integral of p(x|z) N(z; 0, 1) dz for a 1-d latent, on a dense grid."""
    z = torch.linspace(-9, 9, 18_001).unsqueeze(1)  # (G, 1)
    with torch.no_grad():
        x_hat = model.decode(z)  # (G, C, H, W)
    out = []
    for xi in x:
        log_joint = (losses.log_likelihood(x_hat, xi.expand_as(x_hat))
                     + D.Normal(0.0, 1.0).log_prob(z[:, 0]))
        out.append(torch.logsumexp(log_joint, 0) + math.log(float(z[1, 0] - z[0, 0])))
    return torch.stack(out)


def test_iwae_bound_tightens_towards_the_true_log_likelihood():
    torch.manual_seed(5)
    model = _tiny_vae(latent_dim=1)
    x = (torch.rand(6, 1, 4, 4) > 0.5).float()
    train.fit(model, x.repeat(32, 1, 1, 1), losses.vae_objective(), num_epochs=20,
              batch_size=32, lr=1e-2, seed=0, device="cpu", progress=False)
    with torch.no_grad():  # widen q(z|x) past the true posterior: the bounds become loose
        model.encoder[-1].bias[1] += 2.0  # the logvar output of the 1-d latent
    truth = _log_px_by_quadrature(model, x)
    g = torch.Generator().manual_seed(6)
    repeats = 400
    estimates = {k: torch.stack([metrics.iwae_log_likelihood(model, x, k, generator=g)
                                 for _ in range(repeats)]) for k in (1, 10, 100)}
    means = {k: e.mean(0) for k, e in estimates.items()}
    errs = {k: e.std(0) / math.sqrt(repeats) for k, e in estimates.items()}
    elbo = -metrics.elbo(model, x, n_samples=2000, generator=g)["loss"]
    # K = 1 is an ELBO estimate; then the bound rises with K and stays below log p(x)
    assert torch.all((means[1] - elbo).abs() < 4 * errs[1] + 0.02)
    for small, large in ((1, 10), (10, 100)):  # averaged over images and repeats
        gain = estimates[large] - estimates[small]
        assert float(gain.mean()) > 4 * float(gain.std()) / math.sqrt(gain.numel())
    assert torch.all(means[100] <= truth + 4 * errs[100])
    big = metrics.iwae_log_likelihood(model, x, 20_000, batch_size=2, generator=g)
    assert torch.allclose(big, truth, atol=0.02)


def test_elbo_is_below_the_iwae_estimate_on_average_for_a_trained_model():
    torch.manual_seed(7)
    x = data.load("digits").x_test[:64]
    model = models.VAE(models.VAEConfig(latent_dim=4, hidden_dims=(32,)))
    train.fit(model, x, losses.vae_objective(), num_epochs=5, batch_size=32, seed=0,
              device="cpu", progress=False)
    g = torch.Generator().manual_seed(8)
    neg_elbo = metrics.elbo(model, x, n_samples=50, generator=g)
    assert torch.allclose(neg_elbo["loss"], neg_elbo["recon"] + neg_elbo["kl"])
    iwae = metrics.iwae_log_likelihood(model, x, 50, batch_size=7, generator=g)
    assert float(iwae.mean()) > float(-neg_elbo["loss"].mean())


def test_kl_per_unit_and_active_units():
    model = _tiny_vae(latent_dim=3)
    x = torch.rand(20, 1, 4, 4)
    kl = metrics.kl_per_unit(model, x, batch_size=6)
    with torch.no_grad():
        direct = losses.gaussian_kl(*model.encode_distribution(x), per_unit=True).mean(0)
    assert kl.shape == (3,) and torch.allclose(kl, direct)
    assert metrics.active_units(torch.tensor([0.5, 0.001, 0.02, 0.0]), threshold=0.01) == 2


def test_fitted_gaussian_and_its_samples():
    g = torch.Generator().manual_seed(9)
    z = torch.randn(500, 3, generator=g) @ torch.tensor([[2.0, 0, 0], [1, 1, 0], [0, 0.5, 0.1]]) + 3
    mean, cov = metrics.fit_gaussian(z)
    assert np.allclose(cov.numpy(), np.cov(z.double().numpy().T, bias=True))
    assert np.allclose(mean.numpy(), z.double().numpy().mean(0))
    draws = metrics.sample_gaussian(mean, cov, 100_000, generator=g)
    m2, c2 = metrics.fit_gaussian(draws)
    assert torch.allclose(m2, mean, atol=0.03) and torch.allclose(c2, cov, atol=0.05)
    singular = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    assert torch.isfinite(metrics.sample_gaussian(torch.zeros(2), singular, 10, generator=g)).all()


def test_nearest_distance_matches_brute_force():
    g = torch.Generator().manual_seed(10)
    x, ref = torch.rand(7, 1, 3, 3, generator=g), torch.rand(11, 1, 3, 3, generator=g)
    brute = torch.tensor([min(float((a - b).norm()) for b in ref) for a in x])
    assert torch.allclose(metrics.nearest_distance(x, ref, batch_size=3), brute, atol=1e-5)
    with pytest.raises(ValueError, match="values vs reference"):
        metrics.nearest_distance(x, torch.rand(2, 1, 2, 2))


def test_interpolation_runs_between_the_two_reconstructions():
    model = models.VAE(models.VAEConfig(latent_dim=3, hidden_dims=(16,)))
    x = torch.rand(2, 1, 28, 28)
    path = models.interpolate(model, x[0], x[1], steps=5)
    assert path.shape == (5, 1, 28, 28)
    with torch.no_grad():
        ends = model.decode(model.encode(x))
    assert torch.allclose(path[0], ends[0], atol=1e-6) and torch.allclose(path[-1], ends[1], atol=1e-6)
    with torch.no_grad():
        mid = model.decode(model.encode(x).mean(0, keepdim=True))
    assert torch.allclose(models.interpolate(model, x[0], x[1], steps=3)[1], mid[0], atol=1e-6)
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        models.interpolate(model, x[0], x[1], steps=1)


def test_latent_grid_follows_gaussian_quantiles():
    grid = models.latent_grid(n=5, coverage=0.9)
    assert grid.shape == (25, 2)
    edge = float(D.Normal(0.0, 1.0).icdf(torch.tensor(0.95)))
    assert abs(float(grid[0, 0]) + edge) < 1e-5 and abs(float(grid[0, 1]) - edge) < 1e-5
    assert abs(float(grid[12, 0])) < 1e-6 and abs(float(grid[12, 1])) < 1e-6  # centre
    assert torch.all(grid[:5, 1] == grid[0, 1]) and torch.all(grid[4::5, 0] == grid[4, 0])
    with pytest.raises(ValueError, match="coverage"):
        models.latent_grid(n=5, coverage=1.0)


def test_latent_view_is_the_explorers_callback():
    from aelib import widgets

    model = models.VAE(models.VAEConfig(latent_dim=2, hidden_dims=(16,)))
    image = widgets.latent_view(model, 0.5, -1.0)
    with torch.no_grad():
        expected = model.decode(torch.tensor([[0.5, -1.0]]))[0]
    assert image.shape == (1, 28, 28) and torch.equal(image, expected)
    with pytest.raises(ValueError, match="2-d code"):
        widgets.latent_view(models.VAE(models.VAEConfig(latent_dim=3, hidden_dims=(8,))), 0, 0)


def test_latent_explorer_builds_and_redraws():
    pytest.importorskip("ipywidgets")
    import matplotlib.pyplot as plt

    from aelib import widgets

    box = widgets.latent_explorer(models.VAE(models.VAEConfig(latent_dim=2, hidden_dims=(8,))))
    sliders = box.children[0].children
    sliders[0].value = 1.5
    sliders[1].value = -2.0
    png = base64.b64decode(box._repr_mimebundle_()["image/png"])  # the page without widgets
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="2-d code"):
        widgets.latent_explorer(models.VAE(models.VAEConfig(latent_dim=3, hidden_dims=(8,))))
    plt.close("all")


def test_latent_figures_draw():
    import matplotlib.pyplot as plt

    from aelib import plot

    grid = models.latent_grid(n=4)
    fig = plot.manifold(torch.rand(16, 1, 28, 28), grid)
    assert len(fig.axes) == 1
    fig = plot.latent_scatter(torch.randn(30, 2), torch.arange(30) % 10)
    fig2 = plot.bars({"beta 1": torch.rand(5), "beta 4": torch.rand(5)}, "KL", threshold=0.01)
    assert len(fig2.axes) == 2
    with pytest.raises(ValueError, match="n\\*n images"):
        plot.manifold(torch.rand(15, 1, 28, 28), grid[:15])
    plt.close("all")


def test_bernoulli_entropy_is_the_floor_of_the_bce():
    g = torch.Generator().manual_seed(11)
    x = torch.rand(5, 1, 4, 4, generator=g)
    floor = metrics.bernoulli_entropy(x)
    ref = D.Bernoulli(probs=x).entropy().flatten(1).sum(1)
    assert torch.allclose(floor, ref, atol=1e-5)
    for x_hat in (torch.rand(5, 1, 4, 4, generator=g), x.clamp(0.01, 0.99)):
        assert torch.all(-losses.log_likelihood(x_hat, x) >= floor - 1e-5)
    assert float(metrics.bernoulli_entropy((x > 0.5).float()).abs().max()) == 0.0


def test_digit_classifier_judges_real_and_scrambled_images():
    d = data.load("digits", verbose=False)
    judge = metrics.DigitClassifier(d.x_train, d.y_train, hidden=64, max_iter=100)
    assert judge.accuracy(d.x_test, d.y_test) > 0.9
    p = judge.proba(d.x_test[:10])
    assert p.shape == (10, 10) and torch.allclose(p.sum(1), torch.ones(10, dtype=p.dtype))
    assert torch.all((judge.confidence(d.x_test[:10]) > 0) & (judge.confidence(d.x_test[:10]) <= 1))
    # confidence is fooled by noise; the Frechet distance of the features is not
    noise = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(12))
    assert float(judge.confidence(noise).mean()) > 0.5
    real, held = judge.features(d.x_train[:300]), judge.features(d.x_test[:300])
    assert judge.features(noise).shape == (300, 64)
    assert metrics.frechet_distance(real, held) < 0.2 * metrics.frechet_distance(real, judge.features(noise))
    with pytest.raises(ValueError, match="images \\(N, ...\\) and labels \\(N,\\)"):
        metrics.DigitClassifier(d.x_train, d.y_train[:5])


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    g = torch.Generator().manual_seed(13)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5]) + 1
    b = torch.randn(4000, 3, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.5])
    (mu_a, cov_a), (mu_b, cov_b) = metrics.fit_gaussian(a), metrics.fit_gaussian(b)
    # for commuting covariances tr sqrt(Ca Cb) = sum sqrt(eig_a eig_b); near-diagonal here
    approx = float((mu_a - mu_b).square().sum()
                   + (cov_a.diagonal().sqrt() - cov_b.diagonal().sqrt()).square().sum())
    assert abs(metrics.frechet_distance(a, b) - approx) < 0.05
    assert abs(metrics.frechet_distance(a, a)) < 1e-6
    with pytest.raises(ValueError, match="feature widths differ"):
        metrics.frechet_distance(a, b[:, :2])


# ----------------------------------------------------------------- remedies for posterior collapse

def test_warmup_beta_rises_linearly_then_stays():
    assert losses.warmup_beta(0, 1.0, 100) == 0.0
    assert losses.warmup_beta(25, 1.0, 100) == 0.25
    assert losses.warmup_beta(50, 4.0, 100) == 2.0
    assert losses.warmup_beta(100, 1.0, 100) == 1.0
    assert losses.warmup_beta(10_000, 1.0, 100) == 1.0
    assert losses.warmup_beta(None, 1.0, 100) == 1.0  # evaluation: the target weight
    assert losses.warmup_beta(0, 1.0, 0) == 1.0  # no warm-up


def _free_bits_by_hand(mu, logvar, floor):
    """sum_j max(mean_n KL_nj, floor), with each KL from torch.distributions, unit by unit."""
    total = 0.0
    for j in range(mu.shape[1]):
        q = D.Normal(mu[:, j].double(), torch.exp(0.5 * logvar[:, j].double()))
        kl_j = float(D.kl_divergence(q, D.Normal(0.0, 1.0)).mean())
        total += max(kl_j, floor)
    return total


def test_free_bits_kl_against_a_hand_computation():
    g = torch.Generator().manual_seed(4)
    mu = torch.randn(6, 5, generator=g) * torch.tensor([2.0, 0.5, 0.05, 0.01, 1.0])
    logvar = torch.randn(6, 5, generator=g) * torch.tensor([0.5, 0.3, 0.01, 0.01, 0.2])
    for floor in (0.0, 0.1, 0.5, 3.0):
        got = float(losses.free_bits_kl(mu, logvar, floor))
        assert math.isclose(got, _free_bits_by_hand(mu, logvar, floor), rel_tol=1e-5), floor
    assert torch.allclose(losses.free_bits_kl(mu, logvar, 0.0),
                          losses.gaussian_kl(mu, logvar).mean())
    # a unit under the floor gets no gradient from the KL; one above it does
    mu_ = mu.clone().requires_grad_()
    losses.free_bits_kl(mu_, logvar, 0.5).backward()
    per_unit = losses.gaussian_kl(mu, logvar, per_unit=True).mean(dim=0)
    below = per_unit < 0.5
    assert bool(below.any()) and bool((~below).any())
    assert bool((mu_.grad[:, below] == 0).all()) and bool((mu_.grad[:, ~below] != 0).any())


def test_vae_objective_with_free_bits_and_warmup_against_a_hand_computation():
    model = _tiny_vae(latent_dim=3)
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(2))

    def by_hand(beta_t, floor):
        torch.manual_seed(11)  # the same draw of z as the objective's
        mu, logvar = model.encode_distribution(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape)
        x_hat = model.decode(z)
        recon = -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).flatten(1).sum(dim=1)
        kl = _free_bits_by_hand(mu.detach(), logvar.detach(), floor)
        return float(recon.mean().detach()) + beta_t * kl

    for kwargs, step, beta_t, floor in [
        (dict(free_bits=0.3), None, 1.0, 0.3),
        (dict(free_bits=0.3), 7, 1.0, 0.3),  # no warm-up: the step changes nothing
        (dict(warmup_steps=40), 10, 0.25, 0.0),
        (dict(warmup_steps=40), None, 1.0, 0.0),
        (dict(warmup_steps=40), 0, 0.0, 0.0),
        (dict(beta=2.0, warmup_steps=40, free_bits=0.3), 30, 1.5, 0.3),
    ]:
        objective = losses.vae_objective(**kwargs)
        torch.manual_seed(11)
        loss, parts = objective(model, x, step=step)
        assert math.isclose(float(loss.detach()), by_hand(beta_t, floor), rel_tol=1e-5), kwargs
        torch.manual_seed(11)
        plain, plain_parts = losses.vae_objective()(model, x)
        # the reported parts are the plain ELBO's, whatever the remedy
        assert torch.equal(parts["kl"], plain_parts["kl"])
        assert torch.equal(parts["recon"], plain_parts["recon"])


def test_vae_objective_settings_and_cache_keys():
    keys = {losses.vae_objective().cache_key,
            losses.vae_objective(beta=4.0).cache_key,
            losses.vae_objective(warmup_steps=100).cache_key,
            losses.vae_objective(warmup_steps=200).cache_key,
            losses.vae_objective(free_bits=0.1).cache_key,
            losses.vae_objective(free_bits=0.2).cache_key,
            losses.vae_objective(warmup_steps=100, free_bits=0.1).cache_key}
    assert len(keys) == 7
    assert losses.vae_objective().cache_key == "vae(beta=1.0)"
    assert losses.vae_objective(warmup_steps=10).takes_step
    assert not losses.vae_objective(free_bits=0.1).takes_step
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        losses.vae_objective(warmup_steps=-1)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        losses.vae_objective(warmup_steps=2.5)
    with pytest.raises(ValueError, match="free_bits must be a number >= 0"):
        losses.vae_objective(free_bits=-0.1)
    assert losses.vae_objective(binarized=True).cache_key == "vae(beta=1.0, binarized=True)"
    assert (losses.vae_objective(free_bits=0.1, binarized=True).cache_key
            not in keys | {"vae(beta=1.0, binarized=True)"})
    with pytest.raises(TypeError, match="binarized must be True or False"):
        losses.vae_objective(binarized=1)


def test_binarized_objective_is_the_negative_elbo_of_the_binarised_batch():
    """Against torch.distributions: Bernoulli log-likelihood of the drawn binary
    images under the decoder, Normal KL from the prior."""
    model = _tiny_vae(latent_dim=3)
    x = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    loss, parts = losses.vae_objective(binarized=True)(model, x)
    torch.manual_seed(5)  # the same draws: first the binary image, then z
    xb = (torch.rand(x.shape) < x).float()
    mu, logvar = model.encode_distribution(xb)
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn(mu.shape)
    probs = model.decode(z).clamp(1e-7, 1 - 1e-7)
    recon = -D.Bernoulli(probs=probs).log_prob(xb).flatten(1).sum(dim=1)
    kl = D.kl_divergence(D.Normal(mu, std), D.Normal(0.0, 1.0)).sum(dim=1)
    assert torch.allclose(parts["recon"], recon.mean().detach(), rtol=1e-4)
    assert torch.allclose(parts["kl"], kl.mean().detach(), rtol=1e-5)
    assert math.isclose(float(loss), float((recon + kl).mean()), rel_tol=1e-4)
    # on grey images it is not the plain objective: that one scores x itself
    torch.manual_seed(5)
    plain, _ = losses.vae_objective()(model, x)
    assert not math.isclose(float(plain), float(loss), rel_tol=1e-3)


def test_bernoulli_likelihood_is_a_density_only_on_binary_images():
    """Summed over every binary 2x2 image, exp(log p(x|z)) is 1; the same sum
    over grey images is not, which is why the chapter binarises."""
    probs = torch.tensor([[0.1, 0.7, 0.4, 0.95]]).view(1, 1, 2, 2)
    images = torch.tensor([[(i >> b) & 1 for b in range(4)] for i in range(16)],
                          dtype=torch.float32).view(16, 1, 2, 2)
    log_p = losses.log_likelihood(probs.expand(16, 1, 2, 2), images, "bernoulli", None)
    assert math.isclose(float(log_p.exp().sum()), 1.0, rel_tol=1e-5)
    # one grey pixel: the "density" integrates over [0, 1] to (p - q) / log(p / q), not 1
    x = torch.linspace(0, 1, 10_001).view(-1, 1, 1, 1)
    p = torch.full_like(x, 0.7)
    mass = float(torch.trapezoid(losses.log_likelihood(p, x, "bernoulli", None).exp(), dx=1e-4))
    assert math.isclose(mass, 0.4 / math.log(0.7 / 0.3), rel_tol=1e-4) and mass < 0.5


def test_fit_passes_the_global_step_to_objectives_that_take_it():
    model = _tiny_vae()
    x = torch.rand(50, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    seen = []

    def objective(m, xb, step=None):
        seen.append(step)
        return losses.vae_objective()(m, xb)

    objective.takes_step = True
    train.fit(model, x, objective, val=x[:10], num_epochs=3, batch_size=16, seed=0,
              device="cpu", progress=False)
    per_epoch = train.steps_per_epoch(50, 16)
    training = [s for s in seen if s is not None]
    assert training == list(range(3 * per_epoch))  # counted over the whole run, from 0
    assert seen.count(None) == 3  # validation, once per epoch, without a step


def _warmup_fit(tmp_path, num_epochs, checkpoint=None, on_step=None):
    model = _tiny_vae(latent_dim=3)
    x = torch.rand(60, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(9)
    train.fit(model, x, losses.vae_objective(warmup_steps=30), num_epochs=num_epochs,
              batch_size=16, seed=1, device="cpu", progress=False, checkpoint=checkpoint,
              on_step=on_step)
    return model.state_dict()


class _Stop(Exception):
    pass


def test_a_resumed_warmup_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    reference = _warmup_fit(tmp_path, 4)  # 16 steps, warm-up over 30: it spans the resume
    plain_model = _tiny_vae(latent_dim=3)
    x = torch.rand(60, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(9)
    train.fit(plain_model, x, losses.vae_objective(), num_epochs=4, batch_size=16, seed=1,
              device="cpu", progress=False)
    assert not torch.equal(plain_model.state_dict()["encoder.1.weight"],
                           reference["encoder.1.weight"])  # the warm-up changes training
    # stopped at an epoch's end, resumed for more epochs
    _warmup_fit(tmp_path, 2, checkpoint=tmp_path / "a.pt")
    resumed = _warmup_fit(tmp_path, 4, checkpoint=tmp_path / "a.pt")
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    # stopped in the middle of an epoch (a checkpoint after every step), resumed
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    done = []

    def stop(epoch, step):
        done.append((epoch, step))
        if len(done) == 6:  # epoch 2, step 2
            raise _Stop

    with pytest.raises(_Stop):
        _warmup_fit(tmp_path, 4, checkpoint=tmp_path / "b.pt", on_step=stop)
    resumed = _warmup_fit(tmp_path, 4, checkpoint=tmp_path / "b.pt")
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
