"""Classical image denoisers, the baselines of the denoising chapter.

Gaussian blur and the median filter, written in torch so that they run on
the same device as the models, and a helper that picks each filter's
parameter on the validation split. Tested against `scipy.ndimage`.
Introduced in chapter 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from . import metrics
from .data import add_noise


def _check_images(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} expects float images of shape (N, C, H, W), got {got}.")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur images `x: (N, C, H, W)` with a Gaussian of standard deviation `sigma` pixels.

    The kernel is truncated at 4 sigma; beyond the border the image is
    mirrored about its edge pixels (`scipy.ndimage`'s mode 'mirror'). `sigma = 0`
    returns a copy. Introduced in chapter 3.
    """
    _check_images(x, "gaussian_blur")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0 (pixels), got {sigma!r}.")
    if sigma == 0:
        return x.clone()
    radius = int(4.0 * sigma + 0.5)
    if radius >= min(x.shape[-2:]):
        raise ValueError(f"sigma={sigma} is too large for {x.shape[-2]}x{x.shape[-1]} images "
                         f"(kernel radius {radius}); use sigma < {min(x.shape[-2:]) / 4:.1f}.")
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # rows
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # columns
    return out


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Median of each `size x size` neighbourhood of images `x: (N, C, H, W)`.

    `size` must be odd; borders are mirrored as in `gaussian_blur`. Removes isolated
    outliers (salt-and-pepper noise) while keeping edges. `size = 1` returns
    a copy. Introduced in chapter 3.
    """
    _check_images(x, "median_filter")
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd integer >= 1, got {size!r}.")
    if size == 1:
        return x.clone()
    r = size // 2
    n, c, h, w = x.shape
    padded = F.pad(x, (r, r, r, r), mode="reflect")
    patches = F.unfold(padded.reshape(n * c, 1, h + 2 * r, w + 2 * r), size)  # (N*C, size^2, H*W)
    return patches.median(dim=1).values.view(n, c, h, w)


#: The classical denoisers and the parameter values `tune` tries for each.
FILTERS: dict[str, tuple[Callable[[torch.Tensor, float], torch.Tensor], Sequence]] = {
    "gaussian blur": (gaussian_blur, (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)),
    "median filter": (median_filter, (1, 3, 5, 7)),
}


def tune(name: str, noisy_val: torch.Tensor, clean_val: torch.Tensor) -> tuple[float, float]:
    """Pick the parameter of filter `name` (a key of `FILTERS`) with the best mean PSNR.

    `noisy_val` and `clean_val` are `(N, C, H, W)` validation images; the
    choice is made there and applied to the test images by the caller.
    Returns `(best parameter, its mean validation PSNR in dB)`.
    Introduced in chapter 3.
    """
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; use one of {list(FILTERS)}.")
    fn, grid = FILTERS[name]
    scores = [metrics.mean_psnr(fn(noisy_val, p), clean_val) for p in grid]
    best = max(range(len(grid)), key=lambda i: (scores[i], -i))
    if not math.isfinite(scores[best]):
        raise ValueError("tune: PSNR is not finite; check the images for NaN.")
    return grid[best], scores[best]


def apply(name: str, x: torch.Tensor, parameter: float) -> torch.Tensor:
    """Run filter `name` with `parameter` on images `x: (N, C, H, W)`."""
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; use one of {list(FILTERS)}.")
    return FILTERS[name][0](x, parameter)


def benchmark(models: dict[str, torch.nn.Module], x_val: torch.Tensor, x_test: torch.Tensor,
              kind: str, levels: Sequence[float], seed: int = 0) -> dict[str, dict]:
    """Mean test PSNR of every denoiser at every noise level, filters tuned on validation.

    For each `level`, `x_val` and `x_test` (`(N, C, H, W)` in [0, 1]) are
    corrupted once with `data.add_noise(kind, level)` from generators
    seeded with `seed` (so every method sees the same noisy images); each
    filter of `FILTERS` gets the parameter that is best on the noisy
    validation images, and each model of `models` is applied as it is.
    Returns `{"psnr": {method: [dB per level]}, "parameter": {filter:
    [chosen parameter per level]}}` with methods "noisy input", the
    filters, then the models. Introduced in chapter 3.
    """
    psnr: dict[str, list[float]] = {"noisy input": [], **{f: [] for f in FILTERS},
                                    **{m: [] for m in models}}
    chosen: dict[str, list[float]] = {f: [] for f in FILTERS}
    for i, level in enumerate(levels):
        noisy_val = add_noise(x_val, kind, level, generator=torch.Generator().manual_seed(seed + 2 * i))
        noisy_test = add_noise(x_test, kind, level,
                               generator=torch.Generator().manual_seed(seed + 2 * i + 1))
        psnr["noisy input"].append(metrics.mean_psnr(noisy_test, x_test))
        for name in FILTERS:
            parameter, _ = tune(name, noisy_val, x_val)
            chosen[name].append(parameter)
            psnr[name].append(metrics.mean_psnr(apply(name, noisy_test, parameter), x_test))
        for name, model in models.items():
            psnr[name].append(metrics.mean_psnr(metrics.reconstruct(model, noisy_test), x_test))
    return {"psnr": psnr, "parameter": chosen}
