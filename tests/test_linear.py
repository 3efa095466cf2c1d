"""Chapter 2: the linear autoencoder, principal angles and exact training,
checked against independent implementations (scipy, scikit-learn)."""

import math

import numpy as np
import pytest
import torch

from aelib import losses, metrics, models, pca, train


def low_rank_images(n=400, seed=0, spectrum=(9.0, 4.0, 2.0, 1.0, 0.5, 0.25)):
    """Images (n, 1, 6, 6) whose covariance has the given well-separated spectrum."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(36, len(spectrum), generator=g)).Q  # (36, r)
    coeff = torch.randn(n, len(spectrum), generator=g) * torch.tensor(spectrum).sqrt()
    noise = 0.01 * torch.randn(n, 36, generator=g)
    return (0.5 + 0.05 * (coeff @ basis.T + noise)).view(n, 1, 6, 6)


@pytest.mark.parametrize("p,q", [(5, 3), (3, 5), (4, 4), (1, 6)])
def test_principal_angles_match_scipy(p, q):
    from scipy.linalg import subspace_angles

    g = torch.Generator().manual_seed(p * 10 + q)
    a, b = torch.randn(20, p, generator=g), torch.randn(20, q, generator=g)
    ours = metrics.principal_angles(a, b)
    theirs = np.sort(subspace_angles(a.double().numpy(), b.double().numpy()))
    assert ours.shape == (min(p, q),)
    assert np.allclose(ours.numpy(), theirs, atol=1e-10)


def test_principal_angles_of_a_mixed_basis_are_zero_and_of_orthogonal_spaces_ninety():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 4, generator=g, dtype=torch.float64)
    mix = torch.randn(4, 4, generator=g, dtype=torch.float64)  # any invertible mix
    assert metrics.principal_angles(a, a @ mix).max() < 1e-7  # small angles stay accurate
    e = torch.eye(6, dtype=torch.float64)
    assert torch.allclose(metrics.principal_angles(e[:, :2], e[:, 2:4]),
                          torch.full((2,), math.pi / 2, dtype=torch.float64))
    tilt = torch.tensor([[1.0], [1.0], [0.0]])  # 45 degrees from the x axis
    assert math.isclose(float(metrics.principal_angles(e[:3, :1], tilt)), math.pi / 4, rel_tol=1e-12)


def test_principal_angles_errors():
    with pytest.raises(ValueError, match="same number of rows"):
        metrics.principal_angles(torch.randn(5, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match=r"non-empty matrix \(D, p\)"):
        metrics.principal_angles(torch.randn(5), torch.randn(5, 2))


def test_linear_autoencoder_is_a_centred_linear_map():
    x = low_rank_images()
    model = models.LinearAutoencoder(models.LinearConfig(latent_dim=3, input_shape=(1, 6, 6)))
    model.center_on(x)
    assert torch.allclose(model.mean, x.flatten(1).mean(0))
    assert models.count_parameters(model) == 2 * 3 * 36  # no biases
    out = model(x)
    assert out.x_hat.shape == x.shape and out.z.shape == (len(x), 3)
    w_e, w_d = model.encoder.weight, model.decoder_weight  # (3, 36), (36, 3)
    expected = (x.flatten(1) - model.mean) @ w_e.T @ w_d.T + model.mean
    assert torch.allclose(out.x_hat.flatten(1), expected, atol=1e-6)
    # the mean image is reconstructed exactly: centring, not learned biases
    assert torch.allclose(model(model.mean.view(1, 1, 6, 6)).x_hat.flatten(), model.mean, atol=1e-6)


def test_tied_linear_autoencoder_uses_the_transpose():
    model = models.LinearAutoencoder(models.LinearConfig(latent_dim=2, tied=True, input_shape=(1, 4, 4)))
    assert models.count_parameters(model) == 2 * 16
    assert torch.equal(model.decoder_weight, model.encoder.weight.T)
    rebuilt = models.from_config(models.config_to_dict(model.config))
    assert isinstance(rebuilt, models.LinearAutoencoder) and rebuilt.config == model.config


def test_linear_config_errors():
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1"):
        models.LinearConfig(latent_dim=0)
    with pytest.raises(ValueError, match="cannot be larger than its input"):
        models.LinearConfig(latent_dim=20, input_shape=(1, 4, 4))
    with pytest.raises(TypeError, match="LinearConfig"):
        models.LinearAutoencoder(models.MLPConfig())


def test_alternating_least_squares_reaches_pca_but_not_its_axes():
    x = low_rank_images()
    k = 3
    reference = pca.fit_pca(x, k)
    model = models.LinearAutoencoder(models.LinearConfig(latent_dim=k, input_shape=(1, 6, 6)))
    torch.manual_seed(0)
    model.center_on(x)
    result = train.fit_alternating(model, x)
    losses_seen = result["loss"]
    assert all(b <= a * (1 + 1e-9) for a, b in zip(losses_seen, losses_seen[1:]))  # never increases
    pca_mse = float(losses.mse(reference.reconstruct(x), x))
    assert losses_seen[-1] == pytest.approx(pca_mse, rel=1e-6)
    assert metrics.reconstruction_error(model, x) == pytest.approx(pca_mse, rel=1e-5)
    # same subspace as scikit-learn's PCA ...
    from sklearn.decomposition import PCA as SkPCA

    sk = SkPCA(n_components=k).fit(x.flatten(1).double().numpy())
    angles = metrics.principal_angles(model.decoder_weight, torch.tensor(sk.components_.T))
    assert angles.max() < 1e-4
    # ... but the decoder's columns are not the principal axes
    w = model.decoder_weight / model.decoder_weight.norm(dim=0)
    cos_to_axes = (w.T.double() @ torch.tensor(sk.components_.T)).abs()  # (k, k)
    assert cos_to_axes.max(dim=1).values.min() < 0.99
    # PCA of the reconstructions recovers the axes, up to sign
    recovered = pca.fit_pca(metrics.reconstruct(model, x), k)
    cos = (recovered.components.double() * torch.tensor(sk.components_)).sum(1).abs()
    assert torch.allclose(cos, torch.ones(k, dtype=torch.float64), atol=1e-4)


def test_fit_alternating_refuses_other_models():
    with pytest.raises(TypeError, match="untied LinearAutoencoder"):
        train.fit_alternating(models.Autoencoder(models.MLPConfig()), torch.rand(4, 1, 28, 28))
    tied = models.LinearAutoencoder(models.LinearConfig(latent_dim=2, tied=True))
    with pytest.raises(TypeError, match="untied"):
        train.fit_alternating(tied, torch.rand(4, 1, 28, 28))


def test_fit_tracks_values_per_epoch_and_resume_keeps_them(tmp_path):
    x = low_rank_images(n=64)
    obj = losses.reconstruction_objective("mse")

    def make():
        torch.manual_seed(0)
        return models.LinearAutoencoder(models.LinearConfig(latent_dim=2, input_shape=(1, 6, 6))).center_on(x)

    def norm(model):
        return {"norm": float(model.decoder_weight.detach().norm())}

    straight = make()
    h = train.fit(straight, x, obj, num_epochs=3, batch_size=16, track=norm)
    assert len(h["track"]["norm"]) == 3 and h["track"]["norm"][-1] == pytest.approx(norm(straight)["norm"])
    train.fit(make(), x, obj, num_epochs=1, batch_size=16, track=norm, checkpoint=tmp_path / "c.pt")
    resumed = train.fit(make(), x, obj, num_epochs=3, batch_size=16, track=norm,
                        checkpoint=tmp_path / "c.pt")
    assert resumed["track"]["norm"] == h["track"]["norm"]


def test_weight_decay_objective_adds_the_sum_of_squared_weights():
    x = low_rank_images(n=8)
    model = models.LinearAutoencoder(models.LinearConfig(latent_dim=2, input_shape=(1, 6, 6))).center_on(x)
    plain, _ = losses.reconstruction_objective("mse")(model, x)
    decayed, parts = losses.reconstruction_objective("mse", weight_decay=0.1)(model, x)
    squares = model.encoder.weight.square().sum() + model.decoder.weight.square().sum()
    assert torch.allclose(parts["reg"], squares)
    assert torch.allclose(decayed, plain + 0.1 * squares)
    assert "weight_decay=0.1" in losses.reconstruction_objective("mse", weight_decay=0.1).cache_key
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        losses.reconstruction_objective("mse", weight_decay=-1.0)


def test_comparison_settings_follow_the_run_mode(monkeypatch):
    full = train.comparison_settings(1000)
    assert full["num_epochs"] * train.steps_per_epoch(1000, 128) >= train.COMPARISON_STEPS["full"]
    monkeypatch.setenv("AELIB_QUICK", "1")
    quick = train.comparison_settings(1000)
    assert quick["num_epochs"] < full["num_epochs"]
    assert quick["batch_size"] == 128 and quick["lr"] == 1e-3
