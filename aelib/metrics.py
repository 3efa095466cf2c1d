"""Evaluation metrics: functions of tensors, or of a model passed in.

Introduced in chapter 1 (per-image error, PSNR, batched evaluation).
"""

from __future__ import annotations

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


def _batched(model: nn.Module, x: torch.Tensor, batch_size: int, fn) -> torch.Tensor:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    device = next(model.parameters()).device  # batches go to the model, results come back
    with evaluation_mode(model):
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

    for name, f, y in (("train", train_features, train_labels), ("test", test_features, test_labels)):
        if f.dim() != 2 or y.dim() != 1 or len(f) != len(y):
            raise ValueError(f"linear_probe: {name} features must be (N, F) and labels (N,), got "
                             f"{tuple(f.shape)} and {tuple(y.shape)}; flatten images with "
                             f"x.flatten(1).")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"linear_probe: train and test features differ in width "
                         f"({train_features.shape[1]} vs {test_features.shape[1]}).")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    clf.fit(train_features.detach().cpu().double().numpy(), train_labels.cpu().numpy())
    return float(clf.score(test_features.detach().cpu().double().numpy(), test_labels.cpu().numpy()))
