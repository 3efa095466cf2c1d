"""Evaluation metrics: functions of tensors, or of a model passed in.

Introduced in chapter 1 (per-image error, PSNR, batched evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from . import losses


def per_image_error(x_hat: torch.Tensor, x: torch.Tensor, loss: str = "mse") -> torch.Tensor:
    """Mean error per image: `(N, ...) , (N, ...) -> (N,)`.

    `loss` is 'mse', 'l1' or 'bce'; the elementwise loss is averaged over all
    but the first dimension. Introduced in chapter 1.
    """
    elementwise = losses.reconstruction_loss(loss)(x_hat, x, reduction="none")
    return elementwise.flatten(1).mean(dim=1)


def psnr(x_hat: torch.Tensor, x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB: `(N, ...) -> (N,)`.

    `10 log10(data_range**2 / mse)` with the MSE of each image; a perfect
    reconstruction gives `inf`. Average the result for a dataset-level figure.
    Introduced in chapter 1.
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range}.")
    err = per_image_error(x_hat, x, "mse")
    return 10.0 * torch.log10(data_range**2 / err)


def mean_psnr(x_hat: torch.Tensor, x: torch.Tensor, max_db: float = 100.0) -> float:
    """Average over images of `psnr(x_hat, x)`, each capped at `max_db` (a float).

    The cap keeps one perfectly reconstructed image (infinite PSNR) from
    making the average infinite. Introduced in chapter 3.
    """
    return float(psnr(x_hat, x).clamp(max=max_db).mean())


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Run `model` on `x: (N, C, H, W)` in evaluation mode, batch by batch.

    Returns `x_hat` of the same shape on `x`'s device, wherever the model
    lives (each batch is moved to the model's device). The model's training /
    evaluation mode is restored afterwards. Introduced in chapter 1.
    """
    return _batched(model, x, batch_size, lambda m, xb: m(xb).x_hat)


@torch.no_grad()
def reconstruct_mean(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """`decode(encode(x))` batch by batch in evaluation mode: `(N, C, H, W)` like `x`.

    For a plain autoencoder this is `reconstruct`. For a VAE, whose forward
    pass draws a random code, it decodes the posterior mean instead, so the
    result is deterministic. Introduced in chapter 7.
    """
    return _batched(model, x, batch_size, lambda m, xb: m.decode(m.encode(xb)))


@torch.no_grad()
def encode(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Codes `z: (N, latent_dim)` of `x: (N, C, H, W)`, batch by batch, in eval mode."""
    return _batched(model, x, batch_size, lambda m, xb: m.encode(xb))


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in evaluation mode for a `with` block, then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def fast_layout(model: nn.Module, device: torch.device | str) -> Iterator[nn.Module]:
    """Run a convolutional model on the CPU with its filters in channels-last layout.

    PyTorch's CPU convolutions (oneDNN) run the small networks of this book
    markedly faster with channels-last weights (`make bench` prints the ratio
    for training): the same arithmetic in another memory order, so a result
    differs from the default layout's only by rounding. Inside the block the
    4-d weights, and the activations of the convolutions, are channels-last
    (use `.reshape`, not `.view`, on them). On exit (also after an error)
    exactly the weights this block converted get their default layout back,
    so a nested block (an evaluation inside training) changes nothing, and
    what a reader loads, saves or compares afterwards sees the usual tensors.
    Other devices, models without 4-d weights and inference mode are left
    alone. `train.fit` trains in it and the evaluation helpers here evaluate
    in it. Introduced in chapter 1.
    """
    converted = []
    if torch.device(device).type == "cpu" and not torch.is_inference_mode_enabled():
        converted = [p for p in model.parameters()
                     if p.dim() == 4 and not p.is_contiguous(memory_format=torch.channels_last)]
    with torch.no_grad():
        for p in converted:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        with torch.no_grad():
            for p in converted:
                p.data = p.data.contiguous()


def _batched(model: nn.Module, x: torch.Tensor, batch_size: int, fn) -> torch.Tensor:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    device = next(model.parameters()).device  # batches go to the model, results come back
    with evaluation_mode(model), fast_layout(model, device):
        return torch.cat([fn(model, x[i:i + batch_size].to(device)).to(x.device)
                          for i in range(0, len(x), batch_size)])


def reconstruction_error(model: nn.Module, x: torch.Tensor, loss: str = "mse",
                         batch_size: int = 1024) -> float:
    """Mean reconstruction error of `model` over all images in `x` (a float).

    Averages the chosen loss over every pixel of every image, as training
    does. Introduced in chapter 1.
    """
    x_hat = reconstruct(model, x, batch_size)
    return float(per_image_error(x_hat, x, loss).mean())


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles between the column spaces of `a: (D, p)` and `b: (D, q)`.

    Returns `min(p, q)` angles in radians, smallest first, in float64 (use
    `torch.rad2deg` for degrees). All zero means one space contains the
    other; the largest angle is the worst-aligned direction. Columns need not
    be orthonormal, only linearly independent. Cosines come from the SVD of
    `Qa.T @ Qb` and sines from the part of `Qb` outside `span(a)`, each used
    where it is accurate (Knyazev & Argentati 2002), as `scipy.linalg.
    subspace_angles` does. Introduced in chapter 2.
    """
    for name, m in (("a", a), ("b", b)):
        if not isinstance(m, torch.Tensor) or m.dim() != 2 or 0 in m.shape:
            got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise ValueError(f"principal_angles: {name} must be a non-empty matrix (D, p) whose "
                             f"columns span a subspace, got {got}.")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"principal_angles: a and b must have the same number of rows (the "
                         f"dimension D), got {a.shape[0]} and {b.shape[0]}.")
    qa = torch.linalg.qr(a.detach().double().cpu()).Q
    qb = torch.linalg.qr(b.detach().double().cpu()).Q
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa  # qa spans the larger space
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(0.0, 1.0).flip(0)  # ascending cosines
    sin = torch.linalg.svdvals(qb - qa @ (qa.T @ qb)).clamp(0.0, 1.0)  # descending sines
    from_cos = torch.arccos(cos).flip(0)  # ascending angles
    from_sin = torch.arcsin(sin).flip(0)
    return torch.where(from_cos < torch.pi / 4, from_sin, from_cos)


# ----------------------------------------------------------------- codes (chapters 4-5)

def sparsity_stats(h: torch.Tensor, threshold: float = 0.05) -> dict[str, object]:
    """How sparse the codes `h: (N, K)` are, measured three ways.

    A code entry is *active* when it is at least `threshold`. Returns
    `mean_activation` (mean of h, float), `near_zero` (fraction of entries
    below the threshold: the fraction of silent units per input, averaged
    over inputs; float), `lifetime` (`(K,)` tensor: for each unit, the
    fraction of inputs on which it is active; a small value is a selective
    unit), `dead` (number of units active on no input) and `always_on`
    (number active on every input). Introduced in chapter 4.
    """
    losses._check_codes(h, "sparsity_stats")
    h = h.detach().float().cpu()
    active = h >= threshold
    lifetime = active.float().mean(dim=0)
    return {"mean_activation": float(h.mean()), "near_zero": float((~active).float().mean()),
            "lifetime": lifetime, "dead": int((lifetime == 0).sum()),
            "always_on": int((lifetime == 1).sum())}


def code_sensitivity(model: nn.Module, x: torch.Tensor, radii: list[float],
                     generator: torch.Generator | None = None, batch_size: int = 1024) -> list[float]:
    """Mean `||h(x + e) - h(x)|| / ||e||` over the images `x: (N, C, H, W)`, for each radius.

    For each `r` in `radii` every image gets one random perturbation `e` of
    norm exactly `r` (a uniformly random direction in pixel space, not
    clipped to [0, 1], since this measures the encoder as a function). Small
    values mean the code barely moves when the input does; as `r -> 0` the
    ratio approaches the Jacobian's average gain `||J u||` over directions
    `u`. Returns one float per radius. Introduced in chapter 5.
    """
    if not radii or any(not r > 0 for r in radii):
        raise ValueError(f"radii must be a non-empty list of positive norms, got {radii!r}.")
    h0 = encode(model, x, batch_size)
    out = []
    for r in radii:
        e = torch.randn(x.shape, generator=generator).to(x)
        e = e * (r / e.flatten(1).norm(dim=1)).view(-1, *[1] * (x.dim() - 1))
        moved = encode(model, x + e, batch_size) - h0
        out.append(float((moved.flatten(1).norm(dim=1) / r).mean()))
    return out


def jacobian_singular_values(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Singular values of the encoder Jacobian at each image: `(N, min(K, D))`, descending.

    `x: (N, C, H, W)`; the exact Jacobian comes from `losses.encoder_jacobian`
    (in evaluation mode), batch by batch. Their squares sum to
    `||dh/dx||_F^2`; a contractive encoder has a few large values
    (directions along the data it must tell apart) and many near zero.
    Introduced in chapter 5.
    """
    device = next(model.parameters()).device
    parts = []
    with evaluation_mode(model):
        for i in range(0, len(x), batch_size):
            jac = losses.encoder_jacobian(model, x[i:i + batch_size].to(device))
            parts.append(torch.linalg.svdvals(jac.detach()).cpu())
    return torch.cat(parts)


def _check_classifier_input(fn: str, train_features: torch.Tensor, train_labels: torch.Tensor,
                            test_features: torch.Tensor, test_labels: torch.Tensor) -> None:
    for name, f, y in (("train", train_features, train_labels), ("test", test_features, test_labels)):
        if f.dim() != 2 or y.dim() != 1 or len(f) != len(y):
            raise ValueError(f"{fn}: {name} features must be (N, F) and labels (N,), got "
                             f"{tuple(f.shape)} and {tuple(y.shape)}; flatten images with "
                             f"x.flatten(1).")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"{fn}: train and test features differ in width "
                         f"({train_features.shape[1]} vs {test_features.shape[1]}).")


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor,
                 test_features: torch.Tensor, test_labels: torch.Tensor,
                 max_iter: int = 2000) -> float:
    """Test accuracy of a logistic-regression classifier trained on frozen features.

    `*_features: (N, F)` (codes, or flattened pixels), `*_labels: (N,)`. The
    features are standardised with the training set's mean and scale, then
    scikit-learn's `LogisticRegression` (L2, C=1, lbfgs) is fitted; it is
    deterministic. A linear probe asks how much of the label information the
    features hold in linearly usable form. Introduced in chapter 4.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check_classifier_input("linear_probe", train_features, train_labels, test_features,
                            test_labels)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    clf.fit(train_features.detach().cpu().double().numpy(), train_labels.cpu().numpy())
    return float(clf.score(test_features.detach().cpu().double().numpy(), test_labels.cpu().numpy()))


# ----------------------------------------------------------------- variational (chapter 6)

def _vae_parts(model: nn.Module, name: str) -> tuple[str, float]:
    cfg = getattr(model, "config", None)
    if not hasattr(model, "encode_distribution") or not hasattr(cfg, "likelihood"):
        raise TypeError(f"{name} needs a VAE (a model with encode_distribution and a likelihood), "
                        f"got {type(model).__name__}.")
    return cfg.likelihood, cfg.sigma


@torch.no_grad()
def elbo(model: nn.Module, x: torch.Tensor, n_samples: int = 1, beta: float = 1.0,
         generator: torch.Generator | None = None, batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Negative ELBO of a VAE per image, in nats, with its parts: `{"loss", "recon", "kl"}`, each `(N,)`.

    `x: (N, C, H, W)`. The KL part is exact (closed form); the
    reconstruction part `-log p(x|z)` is averaged over `n_samples` draws
    `z ~ q(z|x)` (from `generator`, if given). With `n_samples=1` the mean
    of "loss" over a test set is the test loss PyTorch's VAE example
    prints. Evaluation mode; results on the CPU. Introduced in chapter 6.
    """
    likelihood, sigma = _vae_parts(model, "elbo")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}.")

    def parts(m: nn.Module, xb: torch.Tensor) -> torch.Tensor:  # (b, 2): recon, kl
        mu, logvar = m.encode_distribution(xb)
        recon = torch.stack([-losses.log_likelihood(m.decode(m.reparameterize(mu, logvar, generator)),
                                                     xb, likelihood, sigma)
                             for _ in range(n_samples)]).mean(dim=0)
        return torch.stack([recon, losses.gaussian_kl(mu, logvar)], dim=1)

    recon, kl = _batched(model, x, batch_size, parts).cpu().unbind(dim=1)
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean of per-image values `(N,)` and the standard error of that mean, `std / sqrt(N)`.

    The sample standard deviation (N - 1 in its denominator), computed in
    float64 on the CPU. For one model's score over the test images; two
    models on the same images compare with `paired_difference`, whose error
    is usually far smaller. Raises `ValueError` on anything but a 1-d tensor
    of two or more values. Introduced in chapter 6.
    """
    v = torch.as_tensor(values).detach().cpu().double()  # MPS has no float64
    if v.dim() != 1 or len(v) < 2:
        raise ValueError(f"mean_se needs a 1-d tensor of >= 2 values (one per image), "
                         f"got shape {tuple(v.shape)}.")
    return float(v.mean()), float(v.std() / math.sqrt(len(v)))


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean of `a - b` over paired per-image values `(N,)` and the standard error of that mean.

    The standard error is `std(a - b) / sqrt(N)` (sample standard deviation,
    N - 1 in its denominator): two models scored on the same test images
    are compared by their per-image differences, whose spread is usually far
    smaller than that of either score. A mean beyond two standard errors of
    zero is a difference the test set resolves. Introduced in chapter 6.
    """
    a, b = (torch.as_tensor(v).detach().cpu().double() for v in (a, b))  # MPS has no float64
    if a.dim() != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(f"paired_difference needs two 1-d tensors of the same length >= 2 "
                         f"(one value per image, in the same order), got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}.")
    return mean_se(a - b)


def _normal_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * ((z - mu).square() / logvar.exp() + logvar + math.log(2 * math.pi)).sum(dim=-1)


@torch.no_grad()
def iwae_log_likelihood(model: nn.Module, x: torch.Tensor, k: int, batch_size: int = 64,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) per image, in nats: `(N,)`.

    `log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log k`
    with `z_1..z_k ~ q(z|x)` (Burda, Grosse & Salakhutdinov 2016). In
    expectation it is a lower bound on log p(x) that never decreases as `k`
    grows; `k=1` is a (single-sample) ELBO, and as `k -> inf` it tends to
    log p(x). `x: (N, C, H, W)` is processed `batch_size` images at a time,
    each with `k` decoder passes (memory grows with `batch_size * k`).
    Evaluation mode; results on the CPU. Introduced in chapter 6.
    """
    likelihood, sigma = _vae_parts(model, "iwae_log_likelihood")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1 (the number of importance samples), got {k!r}.")

    def estimate(m: nn.Module, xb: torch.Tensor) -> torch.Tensor:  # (b,)
        mu, logvar = m.encode_distribution(xb)  # (b, K) each
        mu_k, logvar_k = mu.repeat(k, 1), logvar.repeat(k, 1)  # (k * b, K), sample-major
        z = m.reparameterize(mu_k, logvar_k, generator)
        log_px_z = losses.log_likelihood(m.decode(z), xb.repeat(k, 1, 1, 1), likelihood, sigma)
        log_pz = _normal_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = _normal_log_prob(z, mu_k, logvar_k)
        log_w = (log_px_z + log_pz - log_qz).view(k, len(xb))
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    return _batched(model, x, batch_size, estimate).cpu()


@torch.no_grad()
def kl_per_unit(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Mean KL(q(z_j|x) || N(0, 1)) of each latent unit over the images `x`: `(K,)`, in nats.

    A unit whose mean KL is near zero has a posterior equal to the prior
    for every input: it is ignored by the decoder ("inactive", or
    collapsed). Introduced in chapter 6.
    """
    _vae_parts(model, "kl_per_unit")
    kl = _batched(model, x, batch_size,
                  lambda m, xb: losses.gaussian_kl(*m.encode_distribution(xb), per_unit=True))
    return kl.cpu().mean(dim=0)


def active_units(kl: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of latent units whose mean KL (`kl_per_unit`) exceeds `threshold` nats."""
    return int((kl > threshold).sum())


def fit_gaussian(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean `(K,)` and covariance `(K, K)` of codes `z: (N, K)` (maximum likelihood, float64)."""
    losses._check_codes(z, "fit_gaussian")
    z = z.detach().double().cpu()
    mean = z.mean(dim=0)
    centred = z - mean
    return mean, centred.T @ centred / len(z)


def sample_gaussian(mean: torch.Tensor, cov: torch.Tensor, n: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """`n` draws from N(mean, cov): `(n, K)` float32 on the CPU.

    Uses the Cholesky factor of `cov` (a tiny multiple of the identity is
    added if `cov` is singular). Introduced in chapter 6, to sample codes
    of a plain autoencoder from a Gaussian fitted to its own codes.
    """
    k = mean.shape[0]
    cov = cov.double().cpu()
    jitter = 1e-9 * float(cov.diagonal().mean().clamp_min(1e-12))
    factor, info = torch.linalg.cholesky_ex(cov)
    if info:
        factor = torch.linalg.cholesky(cov + jitter * torch.eye(k, dtype=cov.dtype))
    eps = torch.randn(n, k, generator=generator, dtype=torch.float64)
    return (mean.double().cpu() + eps @ factor.T).float()


def nearest_distance(x: torch.Tensor, reference: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Euclidean pixel distance from each image of `x` to its nearest image in `reference`: `(N,)`.

    Both `(N, C, H, W)` (or any `(N, ...)` with matching sizes). Introduced in
    chapter 6, to ask whether generated images look like training images.
    """
    ref = reference.flatten(1).float().cpu()
    flat = x.flatten(1).float().cpu()
    if flat.shape[1] != ref.shape[1]:
        raise ValueError(f"nearest_distance: images of {flat.shape[1]} values vs reference of "
                         f"{ref.shape[1]}.")
    return torch.cat([torch.cdist(flat[i:i + batch_size], ref).amin(dim=1)
                      for i in range(0, len(flat), batch_size)])


def bernoulli_entropy(x: torch.Tensor) -> torch.Tensor:
    """Summed entropy `-sum [x log x + (1 - x) log(1 - x)]` of each image `x: (N, ...)` in [0, 1], in nats: `(N,)`.

    The binary cross-entropy of `x_hat` against grey levels `x` is never
    below this value (it is reached at `x_hat = x`), so it is the floor of
    a Bernoulli decoder's reconstruction term: zero for binary images,
    large for images with many grey pixels. Introduced in chapter 6.
    """
    return losses.bce(x, x, reduction="none").flatten(1).sum(dim=1)


class DigitClassifier:
    """A small neural-network digit classifier on raw pixels, used as a judge of generated images.

    `DigitClassifier(x_train, y_train)` fits scikit-learn's `MLPClassifier`
    (one hidden layer of `hidden` ReLU units, Adam, fixed `seed`) on
    images `(N, C, H, W)` and labels `(N,)`. `proba(x) -> (N, classes)`;
    `confidence(x) -> (N,)` is the largest class probability: high for
    images that look like some digit, low for images that look like none.
    `features(x) -> (N, hidden)` are the hidden-layer activations, for
    `frechet_distance`. A network's confidence alone is a poor judge: it is
    often near 1 on images that look like nothing (uniform noise, say).
    Introduced in chapter 6.
    """

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor, hidden: int = 256,
                 seed: int = 0, max_iter: int = 200) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        if x_train.dim() < 2 or y_train.dim() != 1 or len(x_train) != len(y_train):
            raise ValueError(f"DigitClassifier needs images (N, ...) and labels (N,), got "
                             f"{tuple(x_train.shape)} and {tuple(y_train.shape)}.")
        self.clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=max_iter, random_state=seed)
        with warnings.catch_warnings():  # a capped run is fine for a judge; its accuracy is reported
            warnings.simplefilter("ignore", ConvergenceWarning)
            # float32, as the images are: half the time of float64 on the complete MNIST
            self.clf.fit(x_train.flatten(1).cpu().float().numpy(), y_train.cpu().numpy())

    def proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities `(N, classes)` of the images `x: (N, C, H, W)`."""
        flat = x.detach().flatten(1).cpu().float().numpy()  # float32, as it was fitted
        return torch.from_numpy(self.clf.predict_proba(flat)).double()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden-layer activations `relu(x W + b)`: `(N, hidden)`, float64."""
        weight, bias = self.clf.coefs_[0].astype("float64"), self.clf.intercepts_[0].astype("float64")
        flat = x.detach().flatten(1).cpu().double().numpy()
        return torch.from_numpy(flat @ weight + bias).clamp_min(0)

    def confidence(self, x: torch.Tensor) -> torch.Tensor:
        """Largest class probability of each image: `(N,)`."""
        return self.proba(x).amax(dim=1)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Fraction of images `x` whose most probable class is the label `y`."""
        return float((self.proba(x).argmax(dim=1) == y.cpu()).double().mean())


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features `a: (N, F)`, `b: (M, F)`.

    `||mu_a - mu_b||**2 + tr(C_a + C_b - 2 (C_a C_b)**(1/2))`, the squared
    2-Wasserstein distance of the two fitted Gaussians. On the features of
    an image classifier it scores a set of generated images against real
    ones, both their quality and their variety (the FID of GAN papers uses
    an ImageNet network's features; the book uses `DigitClassifier`'s).
    Lower is better; it is biased upwards for small sets, so compare sets
    of equal size. Introduced in chapter 6.
    """
    for name, f in (("a", a), ("b", b)):
        if f.dim() != 2 or len(f) < 2:
            raise ValueError(f"frechet_distance: {name} must be features (N, F) with N >= 2, got "
                             f"{tuple(f.shape)}.")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance: feature widths differ ({a.shape[1]} vs {b.shape[1]}).")
    (mu_a, cov_a), (mu_b, cov_b) = fit_gaussian(a), fit_gaussian(b)
    # tr (C_a C_b)^(1/2) = tr (S C_b S)^(1/2) with S = C_a^(1/2): a symmetric PSD matrix,
    # so eigh is stable even when dead ReLU features make the covariances singular
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T
    trace_root = float(torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum())
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace()) - 2 * trace_root


# ----------------------------------------------------------------- applications (chapter 7)

def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of `scores: (N,)` for the binary labels `positive: (N,)`.

    The probability that a random positive scores higher than a random
    negative, ties counted as one half (the Mann-Whitney statistic, with
    average ranks for tied scores); 0.5 is chance, 1.0 a perfect ranking.
    In anomaly detection the positives are the anomalies and the score is
    the anomaly score (say the reconstruction error). Matches scikit-learn's
    `roc_auc_score`. Introduced in chapter 7.
    """
    s, p = scores.detach().flatten().double().cpu(), positive.detach().flatten().cpu()
    if len(s) != len(p):
        raise ValueError(f"auroc: {len(s)} scores but {len(p)} labels; give one label per "
                         f"score (1 = positive, e.g. anomaly), in the same order.")
    if not torch.isfinite(s).all():
        raise ValueError("auroc: the scores contain NaN or inf; check the model that made them "
                         "(a diverged model gives NaN errors).")
    if p.dtype != torch.bool:
        if not ((p == 0) | (p == 1)).all():
            raise ValueError("auroc: labels must be booleans or 0/1 (1 = positive, e.g. anomaly).")
        p = p.bool()
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"auroc needs both classes, got {n_pos} positives and {n_neg} "
                         f"negatives.")
    _, inverse, counts = torch.unique(s, return_inverse=True, return_counts=True)
    counts = counts.double()
    below = torch.cumsum(counts, 0) - counts  # how many scores lie strictly below each value
    ranks = (below + (counts + 1) / 2.0)[inverse]  # 1-based average ranks
    return float((ranks[p].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def allowed_above(n: int, fpr: float) -> int:
    """k = floor(fpr * n): how many of n normal images a threshold for `fpr` may flag.

    The small tolerance keeps products that land a hair below a whole number
    in floating point (0.29 * 100 is 28.999999999999996) on that number.
    Introduced in chapter 7.
    """
    return math.floor(fpr * n + 1e-9)


def threshold_at_fpr(normal_scores: torch.Tensor, fpr: float) -> float:
    """The smallest threshold that flags at most a share `fpr` of `normal_scores: (N,)`.

    An image is flagged as anomalous when its score lies above the
    threshold (`score > t`). With k = floor(fpr N) the threshold is the
    (k + 1)-th largest score: at most k of the N normal scores lie above it
    (exactly k when no other score ties with it), and any lower threshold
    flags more than k. `fpr = 0` gives the largest score. Choose it on
    normal validation images and measure the rates on test images; on new
    normal images it flags about (k + 1) / (N + 1) on average, not fpr.
    Introduced in chapter 7.
    """
    s = normal_scores.detach().flatten().double().cpu()
    if len(s) == 0:
        raise ValueError("threshold_at_fpr needs at least one normal score.")
    if not torch.isfinite(s).all():
        raise ValueError("threshold_at_fpr: the scores contain NaN or inf; check the model "
                         "that made them.")
    if not 0 <= fpr < 1:
        raise ValueError(f"threshold_at_fpr: fpr is a share of the normal images, 0 <= fpr < 1; "
                         f"got {fpr}.")
    k = allowed_above(len(s), fpr)
    return float(s.sort().values[len(s) - k - 1])


def _flat_features(name: str, f: torch.Tensor) -> torch.Tensor:
    if f.dim() < 2:
        raise ValueError(f"{name} must be (N, F) features or (N, C, H, W) images, got shape "
                         f"{tuple(f.shape)}.")
    return f.detach().flatten(1).float()


@torch.no_grad()
def cosine_neighbours(queries: torch.Tensor, database: torch.Tensor, k: int,
                      batch_size: int = 1024, exclude_self: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` most cosine-similar rows of `database` for each query: `(similarities, indices)`, each `(Q, k)`.

    `queries: (Q, F)` and `database: (M, F)` (images are flattened). Rows are
    normalised to unit length and the similarities are one matrix product
    per batch of `batch_size` queries, on the device of `database`, followed
    by `torch.topk`; nearest first. With `exclude_self` the query `i` is
    assumed to be database row `i` and is never returned (a leave-one-out
    search within one set). Introduced in chapter 7.
    """
    q, db = _flat_features("queries", queries), _flat_features("database", database)
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"cosine_neighbours: queries have {q.shape[1]} features, the database "
                         f"{db.shape[1]}; encode both with the same model.")
    limit = len(db) - (1 if exclude_self else 0)
    if not 1 <= k <= limit:
        raise ValueError(f"k must lie in 1..{limit} (the database size), got {k}.")
    if exclude_self and len(q) != len(db):
        raise ValueError("exclude_self needs the queries to be the database itself.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    db = nn.functional.normalize(db, dim=1)
    q = nn.functional.normalize(q.to(db.device), dim=1)
    sims, idx = [], []
    for i in range(0, len(q), batch_size):
        s = q[i:i + batch_size] @ db.T
        if exclude_self:
            rows = torch.arange(len(s), device=s.device)
            s[rows, rows + i] = -math.inf
        top = torch.topk(s, k, dim=1)
        sims.append(top.values)
        idx.append(top.indices)
    return torch.cat(sims).cpu(), torch.cat(idx).cpu()


def precision_at_k(queries: torch.Tensor, query_labels: torch.Tensor, database: torch.Tensor,
                   database_labels: torch.Tensor, ks: tuple[int, ...] = (1, 10, 100),
                   batch_size: int = 1024) -> dict[int, float]:
    """Mean precision@k of a cosine-similarity search: `{k: fraction}` for each `k` of `ks`.

    For every query (`queries: (Q, F)`, labels `(Q,)`) the `k` most similar
    rows of `database` (`(M, F)`, labels `(M,)`) are found with
    `cosine_neighbours`; precision@k is the fraction of them that share the
    query's label, averaged over the queries. Semantic retrieval in
    chapter 7 asks it of codes, of PCA coefficients and of raw pixels.
    """
    if len(queries) != len(query_labels) or len(database) != len(database_labels):
        raise ValueError(f"precision_at_k: {len(queries)} queries with {len(query_labels)} labels, "
                         f"{len(database)} database rows with {len(database_labels)} labels.")
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}.")
    _, idx = cosine_neighbours(queries, database, max(ks), batch_size)
    hits = database_labels.cpu()[idx] == query_labels.cpu()[:, None]  # (Q, max k), nearest first
    return {k: float(hits[:, :k].float().mean()) for k in ks}


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor,
                 test_features: torch.Tensor, test_labels: torch.Tensor, k: int = 5) -> float:
    """Test accuracy of a `k`-nearest-neighbour classifier (Euclidean, majority vote).

    `*_features: (N, F)` (codes, 2-d map coordinates or flattened pixels),
    `*_labels: (N,)`. scikit-learn's `KNeighborsClassifier`; with fewer
    than `k` training examples, `k` shrinks to their number. No scaling: the
    geometry of the features is what is being judged. Introduced in chapter 7.
    """
    from sklearn.neighbors import KNeighborsClassifier

    _check_classifier_input("knn_accuracy", train_features, train_labels, test_features,
                            test_labels)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_features)))
    clf.fit(train_features.detach().cpu().double().numpy(), train_labels.cpu().numpy())
    return float(clf.score(test_features.detach().cpu().double().numpy(), test_labels.cpu().numpy()))


def one_class_auroc(scores: dict[int, torch.Tensor], labels: torch.Tensor) -> dict[int, float]:
    """AUROC of each one-class detector: `{c: auroc(scores[c], labels != c)}`.

    The one-class protocol: the detector for class `c` was trained on images
    of `c` only, `scores[c]: (N,)` are its anomaly scores for all N test
    images (`labels: (N,)`), and every test image of another class counts
    as an anomaly. Introduced in chapter 7.
    """
    return {c: auroc(s, labels.cpu() != c) for c, s in scores.items()}
