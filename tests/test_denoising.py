"""Chapter 3: noise, classical filters (against scipy.ndimage), the denoising
objective and the explorer's callback."""

import base64

import numpy as np
import pytest
import torch

from aelib import data, filters, losses, metrics, models, plot, widgets


def images(n=16, seed=0):
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind,level", [("gaussian", 0.3), ("masking", 0.5), ("salt_pepper", 0.2)])
def test_noise_is_seeded_clipped_and_does_not_touch_the_input(kind, level):
    x = images()
    before = x.clone()
    a = data.add_noise(x, kind, level, generator=torch.Generator().manual_seed(1))
    b = data.add_noise(x, kind, level, generator=torch.Generator().manual_seed(1))
    c = data.add_noise(x, kind, level, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, before)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(data.add_noise(x, kind, 0.0), x)  # level 0 changes nothing


def test_noise_statistics():
    x = torch.full((200, 1, 28, 28), 0.5)
    g = torch.Generator().manual_seed(0)
    masked = data.add_noise(x, "masking", 0.3, generator=g)
    assert (masked == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    sp = data.add_noise(x, "salt_pepper", 0.4, generator=g)
    assert (sp == 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert (sp == 1).float().mean().item() == pytest.approx(0.2, abs=0.01)
    gauss = data.add_noise(x, "gaussian", 0.1, generator=g)  # 0.5 +- 5 sigma: no clipping
    assert (gauss - x).std().item() == pytest.approx(0.1, rel=0.02)
    assert data.add_noise(x, "masking", 1.0).max() == 0


def test_noise_errors_say_what_is_valid():
    x = images()
    with pytest.raises(ValueError, match=r"unknown noise kind 'gausian' \(did you mean 'gaussian'\?\)"):
        data.add_noise(x, "gausian", 0.1)
    with pytest.raises(ValueError, match=r"masking noise level must be the fraction .* in \[0, 1\]; got 1.5"):
        data.add_noise(x, "masking", 1.5)
    with pytest.raises(ValueError, match="gaussian noise level must be .* >= 0"):
        data.add_noise(x, "gaussian", -0.1)
    with pytest.raises(ValueError, match="must be a number"):
        data.add_noise(x, "gaussian", "high")
    with pytest.raises(TypeError, match="floating-point"):
        data.add_noise((x * 255).to(torch.uint8), "gaussian", 0.1)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_blur_matches_scipy(sigma):
    from scipy import ndimage

    x = images(4)
    ours = filters.gaussian_blur(x, sigma)
    theirs = np.stack([ndimage.gaussian_filter(img[0].double().numpy(), sigma, mode="mirror")
                       for img in x])[:, None]
    assert np.allclose(ours.numpy(), theirs, atol=1e-6)


@pytest.mark.parametrize("size", [3, 5])
def test_median_filter_matches_scipy(size):
    from scipy import ndimage

    x = images(4)
    ours = filters.median_filter(x, size)
    theirs = np.stack([ndimage.median_filter(img[0].numpy(), size=size, mode="mirror") for img in x])[:, None]
    assert np.allclose(ours.numpy(), theirs)


def test_filter_errors_and_tuning():
    x = images()
    with pytest.raises(ValueError, match="odd integer"):
        filters.median_filter(x, 4)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        filters.gaussian_blur(x, -1)
    with pytest.raises(ValueError, match="too large"):
        filters.gaussian_blur(x, 5.0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        filters.gaussian_blur(x[0], 1.0)
    with pytest.raises(ValueError, match="unknown filter"):
        filters.tune("wiener", x, x)
    # salt-and-pepper on a flat image: the median filter is the right tool
    clean = torch.full((8, 1, 28, 28), 0.5)
    noisy = data.add_noise(clean, "salt_pepper", 0.1, generator=torch.Generator().manual_seed(0))
    size, score = filters.tune("median filter", noisy, clean)
    assert size >= 3 and score > metrics.mean_psnr(noisy, clean) + 10
    # no noise: no filtering is best
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert filters.tune("gaussian blur", x, x)[0] == 0.0


def test_psnr_against_hand_computation_and_cap():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = x.clone()
    x_hat[0] += 0.1  # mse 0.01 -> 20 dB; image 1 is perfect -> inf, capped
    assert torch.allclose(metrics.psnr(x_hat, x)[0], torch.tensor(20.0))
    assert torch.isinf(metrics.psnr(x_hat, x)[1])
    assert metrics.mean_psnr(x_hat, x, max_db=100.0) == pytest.approx(60.0)
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(x_hat, x, data_range=0)


def test_denoising_objective_targets_the_clean_batch():
    x = images(8)
    identity = models.LinearAutoencoder(models.LinearConfig(latent_dim=144, input_shape=(1, 12, 12)))
    with torch.no_grad():  # encoder = decoder = identity: the output is the (noisy) input
        identity.encoder.weight.copy_(torch.eye(144))
        identity.decoder.weight.copy_(torch.eye(144))
    objective = losses.denoising_objective("masking", 0.5)
    torch.manual_seed(0)
    loss, parts = objective(identity, x)
    torch.manual_seed(0)
    noisy = data.add_noise(x, "masking", 0.5)
    assert torch.allclose(loss, losses.mse(noisy, x))  # compared with the clean x
    assert loss > 0 and set(parts) == {"recon"}
    assert objective.cache_key == "denoising(kind='masking', level=0.5, loss='mse')"
    with pytest.raises(ValueError, match="masking noise level"):
        losses.denoising_objective("masking", 2.0)


def test_denoising_view_is_the_explorers_callback():
    x = data.load("digits", verbose=False).x_test[:3]
    model = models.Autoencoder(models.MLPConfig(latent_dim=4, hidden_dims=(8,)))
    a = widgets.denoising_view({"ae": model}, x, "gaussian", 0.4, seed=3)
    b = widgets.denoising_view({"ae": model}, x, "gaussian", 0.4, seed=3)
    assert list(a) == ["clean", "noisy", "ae"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["ae"].shape == x.shape and not torch.equal(a["noisy"], x)
    with pytest.raises(ValueError, match="unknown noise kind"):
        widgets.denoising_view({"ae": model}, x, "speckle", 0.1)
    fig = widgets.denoising_figure({"ae": model}, x, "masking", 0.5)
    assert len(fig.axes) == 3 * 3
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_denoising_explorer_builds_and_redraws():
    pytest.importorskip("ipywidgets")
    import matplotlib.pyplot as plt

    x = data.load("digits", verbose=False).x_test[:10]  # a row as wide as the book's
    model = models.Autoencoder(models.MLPConfig(latent_dim=4, hidden_dims=(8,)))
    box = widgets.denoising_explorer({"ae": model}, x)
    kind, level = box.children[0].children
    kind.value = "salt_pepper"  # the slider's range follows the kind
    assert level.max == widgets.NOISE_SLIDER["salt_pepper"][1]
    level.value = 0.5
    bundle = box._repr_mimebundle_()  # what a notebook front end or the book's build receives
    assert "application/vnd.jupyter.widget-view+json" in bundle
    png = base64.b64decode(bundle["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")  # the IHDR chunk: drawn at 100 dpi, as inline
    assert width <= 100 * plot.MAX_WIDTH + 20, width
    with pytest.raises(ValueError, match="outside the explorer's range"):
        widgets.denoising_explorer({"ae": model}, x, kind="masking", level=1.5)
    with pytest.raises(ValueError, match="unknown noise kind"):
        widgets.denoising_explorer({"ae": model}, x, kind="speckle")
    plt.close("all")
