"""Losses as pure functions of tensors, and the objectives built from them.

A loss takes tensors and returns a tensor. An objective takes a model and a
batch and returns `(loss, parts)`: the scalar to minimise and a dict of its
named parts (detached 0-dim tensors, e.g. `{"recon": ...}`), so one trainer
serves every model. Introduced in chapter 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import add_noise

Objective = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]

_REDUCTIONS = ("mean", "sum", "none")


def _check_pair(x_hat: torch.Tensor, x: torch.Tensor, reduction: str, name: str) -> None:
    if not isinstance(x_hat, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects two tensors, got {type(x_hat).__name__} and {type(x).__name__}.")
    if x_hat.shape != x.shape:
        raise ValueError(f"{name}: x_hat has shape {tuple(x_hat.shape)} but x has shape "
                         f"{tuple(x.shape)}; the reconstruction must have the input's shape "
                         f"(does the decoder map back to every pixel?).")
    if x.numel() == 0:
        raise ValueError(f"{name}: got empty tensors; pass at least one example.")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction={reduction!r}; use one of {_REDUCTIONS}.")


def _reduce(elementwise: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return elementwise.mean()
    if reduction == "sum":
        return elementwise.sum()
    return elementwise


def mse(x_hat: torch.Tensor, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared error `(x_hat - x)**2`, any matching shapes.

    `reduction`: 'mean' over every element (as `nn.MSELoss`), 'sum', or
    'none' (elementwise). Introduced in chapter 1.
    """
    _check_pair(x_hat, x, reduction, "mse")
    return _reduce((x_hat - x).square(), reduction)


def l1(x_hat: torch.Tensor, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Absolute error `|x_hat - x|`, any matching shapes; `reduction` as in `mse`."""
    _check_pair(x_hat, x, reduction, "l1")
    return _reduce((x_hat - x).abs(), reduction)


def bce(x_hat: torch.Tensor, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy `-[x log x_hat + (1 - x) log(1 - x_hat)]`.

    Both `x` (targets, e.g. pixel intensities) and `x_hat` (predicted
    probabilities, e.g. a sigmoid output) must lie in [0, 1]; anything else
    raises a `ValueError`. Logs are clamped at -100 as in PyTorch, so
    `x_hat` of exactly 0 or 1 gives a large finite loss. Note the second term:
    without it the loss is minimised by `x_hat = 1` everywhere (erratum 8).
    `reduction` as in `mse`. Introduced in chapter 1.
    """
    _check_pair(x_hat, x, reduction, "bce")
    for name, t in (("targets x", x), ("predictions x_hat", x_hat)):
        lo, hi = torch.aminmax(t.detach())
        if lo < 0 or hi > 1 or torch.isnan(lo) or torch.isnan(hi):
            raise ValueError(
                f"bce: {name} must lie in [0, 1] but range over [{float(lo):.3g}, {float(hi):.3g}]. "
                f"Scale images to [0, 1] (divide by 255), end the decoder with a sigmoid, "
                f"or use mse / l1 for other data.")
    return F.binary_cross_entropy(x_hat, x, reduction=reduction)


RECONSTRUCTION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"mse": mse, "l1": l1, "bce": bce}


def reconstruction_loss(name: str) -> Callable[..., torch.Tensor]:
    """The reconstruction loss called `name` ('mse', 'l1' or 'bce')."""
    if name not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"unknown reconstruction loss {name!r}; use one of {sorted(RECONSTRUCTION_LOSSES)}.")
    return RECONSTRUCTION_LOSSES[name]


def weight_l2(model: nn.Module) -> torch.Tensor:
    """Sum of squares of every weight matrix of `model` (parameters with 2 or more
    dimensions; biases are left out). A 0-dim tensor. Introduced in chapter 2.
    """
    weights = [p for p in model.parameters() if p.dim() >= 2]
    if not weights:
        raise ValueError("weight_l2: the model has no weight matrices (no parameter with 2+ dimensions).")
    return torch.stack([w.square().sum() for w in weights]).sum()


def reconstruction_objective(loss: str = "mse", weight_decay: float = 0.0) -> Objective:
    """Objective of a plain autoencoder: reconstruct the batch, nothing else.

    Returns `objective(model, x) -> (loss, {"recon": ...})` with `x` a batch
    of images `(N, C, H, W)` and `recon` the chosen reconstruction loss
    averaged over all elements. With `weight_decay > 0` the objective adds
    `weight_decay * weight_l2(model)` (part "reg"); since `recon` is a mean
    over elements, this equals a penalty of `weight_decay * N * D` on a
    summed squared error. The function carries a `cache_key` so that
    `load_or_fit` can tell objectives apart. Introduced in chapter 1
    (`weight_decay` in chapter 2).
    """
    fn = reconstruction_loss(loss)
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}.")

    def objective(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(x)
        recon = fn(out.x_hat, x)
        if not weight_decay:
            return recon, {"recon": recon.detach()}
        reg = weight_l2(model)
        return recon + weight_decay * reg, {"recon": recon.detach(), "reg": reg.detach()}

    objective.cache_key = (f"reconstruction(loss={loss!r})" if not weight_decay else  # type: ignore[attr-defined]
                           f"reconstruction(loss={loss!r}, weight_decay={weight_decay!r})")
    objective.__name__ = f"reconstruction_{loss}"
    return objective


def denoising_objective(kind: str, level: float, loss: str = "mse") -> Objective:
    """Objective of a denoising autoencoder: reconstruct the clean batch from a corrupted one.

    Returns `objective(model, x) -> (loss, {"recon": ...})`: each call draws
    fresh noise with `data.add_noise(x, kind, level)` (from the global RNG,
    which `fit` seeds and checkpoints), feeds the corrupted images to the
    model and compares its output with the *clean* `x: (N, C, H, W)`.
    Invalid `kind` or `level` fail here, before training. Introduced in
    chapter 3.
    """
    fn = reconstruction_loss(loss)
    add_noise(torch.zeros(1, 1, 1, 1), kind, level)  # validate the arguments now

    def objective(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(add_noise(x, kind, level))
        value = fn(out.x_hat, x)
        return value, {"recon": value.detach()}

    objective.cache_key = f"denoising(kind={kind!r}, level={float(level)!r}, loss={loss!r})"  # type: ignore[attr-defined]
    objective.__name__ = f"denoising_{kind}_{loss}"
    return objective
