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


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Run `model` on `x: (N, C, H, W)` in evaluation mode, batch by batch.

    Returns `x_hat` of the same shape on `x`'s device. The model's training /
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
    with evaluation_mode(model):
        return torch.cat([fn(model, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def reconstruction_error(model: nn.Module, x: torch.Tensor, loss: str = "mse",
                         batch_size: int = 1024) -> float:
    """Mean reconstruction error of `model` over all images in `x` (a float).

    Averages the chosen loss over every pixel of every image, as training
    does. Introduced in chapter 1.
    """
    x_hat = reconstruct(model, x, batch_size)
    return float(per_image_error(x_hat, x, loss).mean())
