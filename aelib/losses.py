"""Losses as pure functions of tensors, and the objectives built from them.

A loss takes tensors and returns a tensor. An objective takes a model and a
batch and returns `(loss, parts)`: the scalar to minimise and a dict of its
named parts (detached 0-dim tensors, e.g. `{"recon": ...}`), so one trainer
serves every model. Introduced in chapter 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import add_noise, binarize

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
    needs_grad = torch.is_grad_enabled() and (x_hat.requires_grad or x.requires_grad)
    if needs_grad or x_hat.device.type != "cpu" or x_hat.dtype != x.dtype:
        return F.binary_cross_entropy(x_hat, x, reduction=reduction)  # its gradient is guarded
    # On the CPU without gradients (evaluation, importance sampling), the same formula with
    # vectorised logs: PyTorch's CPU kernel takes a scalar path that is several times slower.
    # log(1 - p) differs from PyTorch's log1p(-p) by at most about 6e-8 nats per pixel.
    per_pixel = -(x * x_hat.log().clamp_min(-100) + (1 - x) * (1 - x_hat).log().clamp_min(-100))
    return _reduce(per_pixel, reduction)


RECONSTRUCTION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"mse": mse, "l1": l1, "bce": bce}


def reconstruction_loss(name: str) -> Callable[..., torch.Tensor]:
    """The reconstruction loss called `name` ('mse', 'l1' or 'bce')."""
    if name not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"unknown reconstruction loss {name!r}; use one of {sorted(RECONSTRUCTION_LOSSES)}.")
    return RECONSTRUCTION_LOSSES[name]


def _weight_matrices(model: nn.Module, name: str) -> list[torch.Tensor]:
    weights = [p for p in model.parameters() if p.dim() >= 2]
    if not weights:
        raise ValueError(f"{name}: the model has no weight matrices (no parameter with 2+ dimensions).")
    return weights


def weight_l2(model: nn.Module) -> torch.Tensor:
    """Sum of squares of every weight matrix of `model` (parameters with 2 or more
    dimensions; biases are left out). A 0-dim tensor. Introduced in chapter 2.
    """
    return torch.stack([w.square().sum() for w in _weight_matrices(model, "weight_l2")]).sum()


def weight_l1(model: nn.Module) -> torch.Tensor:
    """Sum of absolute values of every weight matrix of `model` (biases left out).

    A 0-dim tensor; the L1 half of Keras' `L1L2` weight regulariser, which
    the sparse-named source uses (erratum 2). Introduced in chapter 4.
    """
    return torch.stack([w.abs().sum() for w in _weight_matrices(model, "weight_l1")]).sum()


def reconstruction_objective(loss: str = "mse", weight_decay: float = 0.0,
                             weight_l1_penalty: float = 0.0) -> Objective:
    """Objective of a plain autoencoder: reconstruct the batch, nothing else.

    Returns `objective(model, x) -> (loss, {"recon": ...})` with `x` a batch
    of images `(N, C, H, W)` and `recon` the chosen reconstruction loss
    averaged over all elements. With `weight_decay > 0` the objective adds
    `weight_decay * weight_l2(model)` (part "reg"); since `recon` is a mean
    over elements, this equals a penalty of `weight_decay * N * D` on a
    summed squared error. `weight_l1_penalty > 0` adds
    `weight_l1_penalty * weight_l1(model)` as well (part "weight_l1"; both
    together are Keras' `L1L2` regulariser). Parts hold the unweighted
    sums. The function carries a `cache_key` so that `load_or_fit` can
    tell objectives apart. Introduced in chapter 1
    (`weight_decay` in chapter 2, `weight_l1_penalty` in chapter 4).
    """
    fn = reconstruction_loss(loss)
    for name, value in (("weight_decay", weight_decay), ("weight_l1_penalty", weight_l1_penalty)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}.")

    def objective(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(x)
        recon = fn(out.x_hat, x)
        loss, parts = recon, {"recon": recon.detach()}
        if weight_decay:
            squares = weight_l2(model)
            loss, parts["reg"] = loss + weight_decay * squares, squares.detach()
        if weight_l1_penalty:
            absolutes = weight_l1(model)
            loss, parts["weight_l1"] = loss + weight_l1_penalty * absolutes, absolutes.detach()
        return loss, parts

    extra = "".join(f", {name}={value!r}" for name, value in
                    (("weight_decay", weight_decay), ("weight_l1_penalty", weight_l1_penalty)) if value)
    objective.cache_key = f"reconstruction(loss={loss!r}{extra})"  # type: ignore[attr-defined]
    objective.__name__ = f"reconstruction_{loss}"
    return objective


def denoising_objective(kind: str, level: float, loss: str = "mse") -> Objective:
    """Objective of a denoising autoencoder: reconstruct the clean batch from a corrupted one.

    Returns `objective(model, x) -> (loss, {"recon": ...})`: each call draws
    fresh noise with `data.add_noise(x, kind, level)` (from the global RNG,
    whose state `fit` checkpoints for resuming), feeds the corrupted images
    to the model and compares its output with the *clean* `x: (N, C, H, W)`.
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


# ----------------------------------------------------------------- sparsity (chapter 4)

def _check_codes(h: torch.Tensor, name: str) -> None:
    if not isinstance(h, torch.Tensor) or h.dim() != 2 or 0 in h.shape:
        got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ValueError(f"{name} expects codes of shape (N, units) with N >= 1, got {got}; "
                         f"pass model.encode(x) (flatten other shapes with h.flatten(1)).")


def l1_activity(h: torch.Tensor) -> torch.Tensor:
    """L1 activity penalty: `sum_j |h_nj|` per example, averaged over the batch.

    `h: (N, K)` codes -> 0-dim tensor. Summing over units and averaging over
    examples makes the value, and so the right penalty weight, independent
    of the batch size (a sum over the batch, as one source writes it, would
    double with the batch). Introduced in chapter 4.
    """
    _check_codes(h, "l1_activity")
    return h.abs().sum(dim=1).mean()


#: Batch-mean activations are clamped to [SPARSITY_EPS, 1 - SPARSITY_EPS] in `kl_sparsity`.
SPARSITY_EPS = 1e-6


def kl_sparsity(h: torch.Tensor, rho: float) -> torch.Tensor:
    """KL sparsity penalty `sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j))`.

    `h: (N, K)` codes in [0, 1] (sigmoid units) -> 0-dim tensor, where
    `rho_hat_j = mean_n h_nj` is unit j's mean activation over the batch and
    `rho` in (0, 1) the target. KL(rho || q) = rho log(rho/q) + (1 - rho)
    log((1 - rho)/(1 - q)) is zero at q = rho and grows without bound as q
    approaches 0 or 1, so `rho_hat` is clamped to [`SPARSITY_EPS`, 1 -
    `SPARSITY_EPS`] to keep a saturated unit from giving an infinite loss
    (a clamped mean passes no gradient, so a unit that is exactly 0 on the
    whole batch is not pulled back; sigmoid units get there only in extreme
    saturation). Introduced in chapter 4.
    """
    _check_codes(h, "kl_sparsity")
    if not isinstance(rho, (int, float)) or not 0 < rho < 1:
        raise ValueError(f"kl_sparsity: rho={rho!r} must lie strictly between 0 and 1 (a target "
                         f"mean activation such as 0.05).")
    lo, hi = torch.aminmax(h.detach())
    if lo < 0 or hi > 1:
        raise ValueError(f"kl_sparsity: codes must lie in [0, 1] (sigmoid units) but range over "
                         f"[{float(lo):.3g}, {float(hi):.3g}]; use a sigmoid code, or l1_activity.")
    q = h.mean(dim=0).clamp(SPARSITY_EPS, 1 - SPARSITY_EPS)  # (K,)
    return (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()


SPARSITY_PENALTIES = ("l1", "kl")


def sparse_objective(penalty: str, weight: float, rho: float = 0.05, loss: str = "mse") -> Objective:
    """Objective of a sparse autoencoder: reconstruction plus `weight` times a penalty on the code.

    `penalty` is 'l1' (`l1_activity`) or 'kl' (`kl_sparsity` with target
    `rho`); the penalty acts on the activations `model(x).z: (N, K)`, not on
    the weights. Returns `objective(model, x) -> (loss, {"recon", "sparsity"})`.
    Introduced in chapter 4.
    """
    fn = reconstruction_loss(loss)
    if penalty not in SPARSITY_PENALTIES:
        raise ValueError(f"unknown sparsity penalty {penalty!r}; use one of {SPARSITY_PENALTIES}.")
    if not weight >= 0:
        raise ValueError(f"weight must be >= 0, got {weight!r}.")
    if penalty == "kl":
        kl_sparsity(torch.full((1, 1), 0.5), rho)  # validate rho now, before training

    def objective(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(x)
        recon = fn(out.x_hat, x)
        sparsity = kl_sparsity(out.z, rho) if penalty == "kl" else l1_activity(out.z)
        return recon + weight * sparsity, {"recon": recon.detach(), "sparsity": sparsity.detach()}

    target = f", rho={float(rho)!r}" if penalty == "kl" else ""
    objective.cache_key = (  # type: ignore[attr-defined]
        f"sparse(penalty={penalty!r}, weight={float(weight)!r}{target}, loss={loss!r})")
    objective.__name__ = f"sparse_{penalty}_{loss}"
    return objective


# ----------------------------------------------------------------- contraction (chapter 5)

def sigmoid_jacobian_norm(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm of the Jacobian of a sigmoid layer, in closed form.

    For `h = sigmoid(W x + b)` the Jacobian is `diag(h (1 - h)) W`, so
    `||dh/dx||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2`. `h: (N, K)` are
    the layer's outputs, `weight: (K, D)` is `W`; returns `(N,)`, one value
    per example, at the cost of one (N, K) x (K,) product. Introduced in
    chapter 5.
    """
    _check_codes(h, "sigmoid_jacobian_norm")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.shape[0] != h.shape[1]:
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"sigmoid_jacobian_norm: weight must be (K, D) with K = {h.shape[1]} "
                         f"code units, got {got}.")
    return (h * (1 - h)).square() @ weight.square().sum(dim=1)


def _codes_of(encoder: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
              name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`(x, h)`: a copy of `x` that requires gradients, and the codes computed from it."""
    fn = encoder.encode if hasattr(encoder, "encode") else encoder
    x = x.detach().requires_grad_(True)
    h = fn(x)
    _check_codes(h, name)
    if h.shape[0] != x.shape[0]:
        raise ValueError(f"{name}: the encoder returned {h.shape[0]} codes for {x.shape[0]} "
                         f"inputs; it must map (N, ...) to (N, K).")
    return x, h


def encoder_jacobian(encoder: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     create_graph: bool = False) -> torch.Tensor:
    """Exact Jacobians `dh/dx` of any encoder at each example: `(N, K, D)`.

    `encoder` is a model with `encode` or any function `(N, ...) -> (N, K)`
    that treats examples independently (no batch statistics, so put batch
    norm in evaluation mode); `x: (N, ...)` with `D = x[0].numel()`. Uses K
    backward passes of autograd (one per code unit, each for the whole
    batch); with `create_graph=True` the result can itself be
    differentiated, for training. Introduced in chapter 5.
    """
    x, h = _codes_of(encoder, x, "encoder_jacobian")
    rows = []
    for j in range(h.shape[1]):
        (g,) = torch.autograd.grad(h[:, j].sum(), x, create_graph=create_graph, retain_graph=True)
        rows.append(g.flatten(1))
    return torch.stack(rows, dim=1)


CONTRACTIVE_METHODS = ("sigmoid", "exact", "projection")


def _sigmoid_layer(model: object) -> nn.Linear:
    """The linear layer of an encoder that is exactly flatten -> linear -> sigmoid."""
    encoder = getattr(model, "encoder", None)
    layers = list(encoder) if isinstance(encoder, nn.Sequential) else []
    if [type(m) for m in layers] != [nn.Flatten, nn.Linear, nn.Sigmoid]:
        raise TypeError("method='sigmoid' needs an encoder that is one sigmoid layer (flatten, "
                        "linear, sigmoid), such as ShallowConfig(activation='sigmoid'); use "
                        "method='exact' for other encoders.")
    return layers[1]


def contractive_penalty(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                        method: str = "exact", n_projections: int = 1,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Squared Frobenius norm of the encoder Jacobian `||dh/dx||_F^2` per example: `(N,)`.

    `x: (N, ...)`. Three ways, all differentiable with respect to the
    model's parameters (for training):

    - 'sigmoid': the closed form `sigmoid_jacobian_norm`, only for a model
      whose encoder is one sigmoid layer (flatten, linear, sigmoid, as
      `ShallowConfig(activation='sigmoid')` builds); one forward pass.
    - 'exact': `encoder_jacobian(..., create_graph=True)`, any encoder; K
      backward passes.
    - 'projection': `||v^T J||^2` for `v ~ N(0, I_K)`, averaged over
      `n_projections` draws (one backward pass each). Unbiased, since
      `E[v^T J J^T v] = tr(J J^T)`, with variance `2 ||J J^T||_F^2 /
      n_projections` per example.

    Introduced in chapter 5.
    """
    if method not in CONTRACTIVE_METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {CONTRACTIVE_METHODS}.")
    if method == "sigmoid":
        return sigmoid_jacobian_norm(model.encode(x), _sigmoid_layer(model).weight)
    if method == "exact":
        return encoder_jacobian(model, x, create_graph=True).square().sum(dim=(1, 2))
    if not isinstance(n_projections, int) or n_projections < 1:
        raise ValueError(f"n_projections must be an integer >= 1, got {n_projections!r}.")
    x, h = _codes_of(model, x, "contractive_penalty")
    total = torch.zeros(len(x), device=x.device, dtype=h.dtype)
    for _ in range(n_projections):
        v = torch.randn(h.shape, generator=generator, device="cpu", dtype=h.dtype).to(h.device)
        (g,) = torch.autograd.grad((h * v).sum(), x, create_graph=True, retain_graph=True)
        total = total + g.flatten(1).square().sum(dim=1)
    return total / n_projections


def contractive_objective(weight: float, method: str = "sigmoid", loss: str = "mse") -> Objective:
    """Objective of a contractive autoencoder: reconstruction plus `weight` times `||dh/dx||_F^2`.

    The penalty is `contractive_penalty(model, x, method)` averaged over the
    batch; the reconstruction loss is averaged over pixels, so `weight`
    here equals `weight * D` in a per-example summed formulation. Returns
    `objective(model, x) -> (loss, {"recon", "jacobian"})`. Introduced in
    chapter 5.
    """
    fn = reconstruction_loss(loss)
    if method not in CONTRACTIVE_METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {CONTRACTIVE_METHODS}.")
    if not weight >= 0:
        raise ValueError(f"weight must be >= 0, got {weight!r}.")

    def objective(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(x)
        recon = fn(out.x_hat, x)
        if method == "sigmoid":  # closed form from the code already computed
            jac = sigmoid_jacobian_norm(out.z, _sigmoid_layer(model).weight).mean()
        else:
            with torch.enable_grad():  # evaluate() runs without gradients
                jac = contractive_penalty(model, x, method).mean()
        return recon + weight * jac, {"recon": recon.detach(), "jacobian": jac.detach()}

    objective.cache_key = (  # type: ignore[attr-defined]
        f"contractive(weight={float(weight)!r}, method={method!r}, loss={loss!r})")
    objective.__name__ = f"contractive_{method}_{loss}"
    return objective


# ----------------------------------------------------------------- variational (chapter 6)

def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, per_unit: bool = False) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in nats, in closed form.

    `mu, logvar: (N, K)`. Per unit the divergence is `(mu**2 + exp(logvar)
    - 1 - logvar) / 2`; returns `(N, K)` with `per_unit=True`, else the sum
    over units, `(N,)`. A unit whose KL is near zero for every input
    carries no information about the input (posterior collapse).
    Introduced in chapter 6.
    """
    _check_codes(mu, "gaussian_kl")
    if not isinstance(logvar, torch.Tensor) or logvar.shape != mu.shape:
        got = tuple(logvar.shape) if isinstance(logvar, torch.Tensor) else type(logvar).__name__
        raise ValueError(f"gaussian_kl: logvar must have mu's shape {tuple(mu.shape)}, got {got}.")
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)  # (N, K)
    return kl if per_unit else kl.sum(dim=1)


def log_likelihood(x_hat: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli",
                   sigma: float = 0.1) -> torch.Tensor:
    """log p(x|z) per example in nats, summed over pixels: `(N, ...) , (N, ...) -> (N,)`.

    `x_hat` is the decoder's output for one code per image. 'bernoulli':
    `sum x log x_hat + (1 - x) log(1 - x_hat)` (minus the summed binary
    cross-entropy; for grey levels in [0, 1] this is the usual convention,
    not a normalised density). 'gaussian': log N(x; x_hat, sigma**2 I) =
    `-||x - x_hat||**2 / (2 sigma**2) - D/2 log(2 pi sigma**2)`.
    Introduced in chapter 6.
    """
    if likelihood == "bernoulli":
        return -bce(x_hat, x, reduction="none").flatten(1).sum(dim=1)
    if likelihood == "gaussian":
        if not sigma > 0:
            raise ValueError(f"log_likelihood: sigma must be > 0, got {sigma!r}.")
        sq = mse(x_hat, x, reduction="none").flatten(1)
        return -0.5 * sq.sum(dim=1) / sigma**2 - 0.5 * sq.shape[1] * math.log(2 * math.pi * sigma**2)
    raise ValueError(f"log_likelihood: likelihood={likelihood!r} is unknown; use 'bernoulli' or "
                     f"'gaussian'.")


def negative_elbo(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  beta: float = 1.0, likelihood: str = "bernoulli",
                  sigma: float = 0.1) -> dict[str, torch.Tensor]:
    """The negative ELBO per example, in nats, with its parts.

    `x_hat`: decoder output for one sample `z ~ q(z|x)` per image, `x`
    the images `(N, C, H, W)`, `mu, logvar: (N, K)`. Returns
    `{"loss": recon + beta * kl, "recon": -log p(x|z), "kl": KL(q(z|x) ||
    N(0, I))}`, each `(N,)`. With `beta = 1` the loss is the negative
    evidence lower bound, an upper bound on -log p(x) (in expectation over
    z); `beta != 1` gives the beta-VAE objective. Introduced in chapter 6.
    """
    if not (isinstance(beta, (int, float)) and beta >= 0):
        raise ValueError(f"negative_elbo: beta must be a number >= 0, got {beta!r}.")
    recon = -log_likelihood(x_hat, x, likelihood, sigma)
    kl = gaussian_kl(mu, logvar)
    if recon.shape != kl.shape:
        raise ValueError(f"negative_elbo: {recon.shape[0]} images but {kl.shape[0]} codes.")
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def warmup_beta(step: int | None, beta: float = 1.0, warmup_steps: int = 0) -> float:
    """The KL weight of a linear KL warm-up at optimiser step `step` (0 for the first step).

    `beta * min(1, step / warmup_steps)`: 0 at the first step, rising
    linearly to `beta`, which it reaches at step `warmup_steps` and keeps.
    `warmup_steps = 0` (no warm-up) or `step = None` (evaluation, outside
    training) give `beta`. Introduced in chapter 6.
    """
    if warmup_steps <= 0 or step is None:
        return float(beta)
    return float(beta) * min(1.0, step / warmup_steps)


def free_bits_kl(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The KL term with a floor of `free_bits` nats per code unit (Kingma et al., 2016).

    `mu, logvar: (N, K)` -> 0-dim tensor `sum_j max(mean_n KL_nj, free_bits)`:
    the KL of each unit is averaged over the batch, and a unit whose mean is
    below the floor costs `free_bits` nats and gets no gradient from the KL,
    so the encoder has no reason to switch it off completely. With
    `free_bits = 0` it is the batch mean of `gaussian_kl`. Introduced in
    chapter 6.
    """
    if not (isinstance(free_bits, (int, float)) and free_bits >= 0):
        raise ValueError(f"free_bits must be a number >= 0 (nats per code unit), got {free_bits!r}.")
    per_unit = gaussian_kl(mu, logvar, per_unit=True).mean(dim=0)  # (K,)
    return per_unit.clamp(min=float(free_bits)).sum()


def vae_objective(beta: float = 1.0, warmup_steps: int = 0, free_bits: float = 0.0,
                  binarized: bool = False) -> Objective:
    """Objective of a VAE: the negative ELBO (`negative_elbo`) averaged over the batch.

    Draws one `z` per image (`model(x)`, reparameterised, from the global
    RNG that `fit` checkpoints) and uses the model's own likelihood
    (`model.config.likelihood`, `model.config.sigma`). Returns
    `objective(model, x, step=None) -> (loss, {"recon", "kl"})`, all in nats
    per image, so `fit`'s history reads directly as nats; "kl" is always the
    plain KL, without warm-up or floor.

    Two remedies for posterior collapse: `warmup_steps > 0` multiplies the KL
    by `warmup_beta(step, beta, warmup_steps)`, rising linearly from 0 to
    `beta` over the first `warmup_steps` optimiser steps (`fit` passes the
    step, counted from 0 over the whole run, to objectives whose
    `takes_step` is true, so a resumed run continues the same schedule; a
    call without `step`, such as `fit`'s validation, uses `beta`);
    `free_bits > 0` replaces the KL by `free_bits_kl` (a floor in nats per
    code unit). `binarized=True` trains on binary images: each batch is
    replaced by `data.binarize(x)` (drawn anew at every step, from the
    global RNG, so a resumed run continues the same draws), the "dynamic
    binarisation" under which a Bernoulli likelihood is a real density and
    papers report log-likelihoods. Introduced in chapter 6.
    """
    if not isinstance(binarized, bool):
        raise TypeError(f"binarized must be True or False, got {binarized!r}.")
    negative_elbo(torch.full((1, 1), 0.5), torch.full((1, 1), 0.5), torch.zeros(1, 1),
                  torch.zeros(1, 1), beta)  # validate beta now, before training
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}.")
    free_bits_kl(torch.zeros(1, 1), torch.zeros(1, 1), free_bits)  # validate free_bits now

    def objective(model: nn.Module, x: torch.Tensor,
                  step: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if binarized:
            x = binarize(x)
        out = model(x)
        if out.mu is None or out.logvar is None:
            raise TypeError("vae_objective needs a model whose output has mu and logvar (a VAE); "
                            "use reconstruction_objective for a plain autoencoder.")
        cfg = model.config
        weight = warmup_beta(step, beta, warmup_steps)
        parts = negative_elbo(out.x_hat, x, out.mu, out.logvar, weight, cfg.likelihood, cfg.sigma)
        if free_bits > 0:
            loss = parts["recon"].mean() + weight * free_bits_kl(out.mu, out.logvar, free_bits)
        else:
            loss = parts["loss"].mean()
        return loss, {"recon": parts["recon"].mean().detach(), "kl": parts["kl"].mean().detach()}

    extra = ""
    if warmup_steps or free_bits:
        extra = f", warmup_steps={warmup_steps!r}, free_bits={float(free_bits)!r}"
    if binarized:
        extra += ", binarized=True"
    objective.cache_key = f"vae(beta={float(beta)!r}{extra})"  # type: ignore[attr-defined]
    objective.takes_step = warmup_steps > 0  # type: ignore[attr-defined]
    objective.__name__ = "vae"
    return objective
