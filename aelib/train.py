"""One training loop for every model: `fit`, checkpoints, `load_or_fit`.

The objective is passed in (`objective(model, batch) -> (loss, parts)`), so
the trainer knows nothing about particular models. Data stay on the device
and batches are index slices. Checkpoints are written atomically, between
steps as well as between epochs, and hold everything needed to resume
bit-for-bit on the CPU: model, optimiser, the shuffle generator and the
position in the epoch's shuffled order, the global RNG state, the epoch's
running sums and the history.
Introduced in chapter 1.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import runtime
from .data import Dataset, batch_indices, one_class
from .losses import Objective
from .metrics import evaluation_mode, fast_layout
from .models import LinearAutoencoder, config_from_dict, config_to_dict

#: Learning-rate schedules `fit` knows.
LR_SCHEDULES = ("constant", "cosine")

#: Version of the checkpoint layout; a file with a larger number is refused. Version 2
#: added the position inside an epoch (`step`, `sums`, `epoch_seconds`).
FORMAT_VERSION = 2

#: A checkpointed `fit` writes its state after a step only when this many seconds have
#: passed since the last write (and always after the last epoch), so an interruption
#: loses at most this much training and small steps do not spend their time writing files.
CHECKPOINT_SECONDS = 10.0


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite during training."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be used with this model (corrupt, mismatched, too new)."""


def default_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """Adam with the given learning rate, fused where PyTorch supports it (CPU, CUDA)."""
    params = list(params)
    fused = runtime.has_fused_adam(params[0].device if params else "cpu")
    return torch.optim.Adam(params, lr=lr, fused=fused)


def fit(model: nn.Module, train: torch.Tensor, objective: Objective, *,
        val: torch.Tensor | None = None, num_epochs: int = 10, batch_size: int = 128,
        lr: float = 1e-3, optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        seed: int | None = None, device: torch.device | str | None = None,
        checkpoint: str | Path | None = None, progress: bool | None = None,
        nan_check_every: int | None = None,
        track: Callable[[nn.Module], dict[str, float]] | None = None,
        lr_schedule: str = "constant",
        on_step: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train `model` on `train: (N, ...)` by minimising `objective`; return the history.

    Each epoch visits every training example once in a shuffled order drawn
    from a generator seeded with `seed` (default `AELIB_SEED`), in batches of
    `batch_size`; after each epoch the objective is averaged over `val` (if
    given) in evaluation mode. `optimizer(params, lr)` builds the optimiser
    (default: Adam). The model and the data are moved to `device` (default:
    `runtime.get_device()`).

    With `checkpoint`, the full training state is written there atomically
    after the last epoch and after any step that ends at least
    `CHECKPOINT_SECONDS` after the previous write (so an interruption,
    even a killed process, loses seconds of work, and tiny steps do not
    spend their time writing files), and a call that finds the file
    resumes from it, mid-epoch included (after checking that it belongs to
    this model and these settings): on the CPU the result is bit for bit
    the uninterrupted run's, and `fit(..., num_epochs=2)` followed by
    `fit(..., num_epochs=4)` gives the weights of `fit(..., num_epochs=4)`.
    The global RNG continues the run's own stream where the run drew from
    it (noise, samples); a run that drew nothing from it leaves the
    caller's RNG as it found it, so a model served from another chapter's
    run changes nothing that follows.
    A loss that becomes NaN or infinite stops training with
    `TrainingDivergedError` naming the epoch and step (checked every step
    on CPU, every `nan_check_every` steps elsewhere).

    `track(model) -> {name: float}`, if given, is called after every epoch
    in evaluation mode without gradients (say, to follow an angle or a test
    error while training); its values go to `history["track"]` and are
    checkpointed with the rest.

    `lr_schedule='cosine'` lowers the learning rate from `lr` to 0 along a
    half cosine over all `num_epochs` (set before every step); 'constant'
    keeps `lr`. A cosine run can only be resumed with the same
    `num_epochs`, since the schedule depends on it.

    On the CPU a model with convolutions trains with its 4-d weights in
    channels-last layout (`metrics.fast_layout`, faster; the objective,
    `track` and `on_step` see that layout) and gets the default layout back
    when `fit` returns.

    `on_step(epoch, step)`, if given, is called after every optimiser step
    (and after the checkpoint of that step, if one is written).

    An objective whose attribute `takes_step` is true (a KL warm-up,
    `losses.vae_objective(warmup_steps=...)`) is called as
    `objective(model, batch, step=t)`, `t` the number of optimiser steps
    done before this one over the whole run; it is computed from the epoch
    and the position in it, so a resumed run continues the same schedule.

    Returns `{"epoch": [...], "train": {part: [...]}, "val": {part: [...]},
    "track": {name: [...]}, "seconds": [...]}` with one entry per epoch;
    parts are "loss" plus the objective's named parts. Introduced in
    chapter 1 (`track` in chapter 2, `lr_schedule` in chapter 6).
    """
    _check_fit_args(model, train, val, num_epochs, batch_size, lr)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={lr_schedule!r} is unknown; use one of {LR_SCHEDULES}.")
    device = runtime.get_device() if device is None else torch.device(device)
    seed = runtime.get_seed() if seed is None else seed
    progress = runtime.progress_enabled() if progress is None else progress
    if nan_check_every is None:
        nan_check_every = 1 if device.type == "cpu" else 50
    model.to(device)
    with fast_layout(model, device):
        train = train.to(device)
        val = val.to(device) if val is not None else None
        make_opt = optimizer or default_optimizer
        opt = make_opt(model.parameters(), lr)
        generator = torch.Generator().manual_seed(seed)
        history: dict[str, Any] = {"epoch": [], "train": {}, "val": {}, "track": {}, "seconds": []}
        settings = {"batch_size": batch_size, "lr": lr, "seed": seed,
                    "optimizer": getattr(make_opt, "__qualname__", repr(make_opt))}
        if lr_schedule != "constant":  # a schedule depends on the length of the run
            settings.update(lr_schedule=lr_schedule, num_epochs=num_epochs)
        start_epoch, start_step, start_sums, start_seconds = 0, 0, {}, 0.0
        rng_start = torch.get_rng_state()  # the global RNG as this run found it
        path = Path(checkpoint) if checkpoint is not None else None
        if path is not None and path.exists():
            state = load_checkpoint(path, model, optimizer=opt, settings=settings)
            start_epoch = state["epoch"]
            history = state["history"]
            generator.set_state(state["generator_state"])  # at the start of epoch start_epoch + 1
            saved_start = state.get("rng_start")
            if saved_start is None or not torch.equal(state["rng_state"], saved_start):
                # the run drew from the global RNG (noise, samples): continue its stream
                torch.set_rng_state(state["rng_state"])
                rng_start = saved_start if saved_start is not None else rng_start
            # else it drew nothing from it, and the caller's RNG is left as it is, so a model
            # trained by another chapter (in another RNG state) changes nothing that follows
            start_step = int(state.get("step", 0))  # steps of that epoch already done
            start_sums = {k: v.to(device) for k, v in state.get("sums", {}).items()}
            start_seconds = float(state.get("epoch_seconds", 0.0))
            if start_epoch > num_epochs:
                raise CheckpointError(
                    f"checkpoint {path} already holds {start_epoch} epochs but num_epochs={num_epochs}; "
                    f"ask for at least {start_epoch} epochs, or delete the file to start afresh.")

        steps = steps_per_epoch(len(train), batch_size)
        bar = _progress_bar(start_epoch, num_epochs, progress)
        last_save = time.perf_counter()
        for epoch in range(start_epoch + 1, num_epochs + 1):
            tic = time.perf_counter()
            model.train()
            resumed = epoch == start_epoch + 1 and start_step > 0
            done_before = start_step if resumed else 0
            sums: dict[str, torch.Tensor] = start_sums if resumed else {}
            seconds_before = start_seconds if resumed else 0.0
            epoch_start_state = generator.get_state()  # the same shuffled order on resume
            for step, idx in enumerate(batch_indices(len(train), batch_size, generator=generator,
                                                     device=device), start=1):
                if step <= done_before:
                    continue  # done before the interruption
                if lr_schedule == "cosine":
                    done = ((epoch - 1) * steps + step - 1) / (num_epochs * steps)
                    for group in opt.param_groups:
                        group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * done))
                batch = train[idx]
                if getattr(objective, "takes_step", False):  # a schedule in the loss (chapter 6)
                    loss, parts = objective(model, batch, step=(epoch - 1) * steps + step - 1)
                else:
                    loss, parts = objective(model, batch)
                if step % nan_check_every == 0 or step == steps:
                    _check_finite(loss, epoch, step, steps, lr)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                _accumulate(sums, loss.detach(), parts, len(idx))
                if path is not None and step < steps and \
                        time.perf_counter() - last_save >= CHECKPOINT_SECONDS:
                    save_checkpoint(path, model, optimizer=opt, epoch=epoch - 1, step=step,
                                    generator_state=epoch_start_state, rng_start=rng_start,
                                    sums={k: v.detach().cpu() for k, v in sums.items()},
                                    epoch_seconds=seconds_before + time.perf_counter() - tic,
                                    history=history, settings=settings)
                    last_save = time.perf_counter()
                if on_step is not None:
                    on_step(epoch, step)
            history["epoch"].append(epoch)
            _append(history["train"], sums, len(train))
            if val is not None:
                _append(history["val"], evaluate(model, val, objective), 1)
            if track is not None:
                with torch.no_grad(), evaluation_mode(model):
                    _append(history.setdefault("track", {}), dict(track(model)), 1)
            history["seconds"].append(seconds_before + time.perf_counter() - tic)
            if path is not None and (epoch == num_epochs
                                     or time.perf_counter() - last_save >= CHECKPOINT_SECONDS):
                save_checkpoint(path, model, optimizer=opt, epoch=epoch, step=0, history=history,
                                generator_state=generator.get_state(), rng_start=rng_start,
                                settings=settings)
                last_save = time.perf_counter()
            if bar is not None:
                shown = {"train": history["train"]["loss"][-1]}
                if val is not None:
                    shown["val"] = history["val"]["loss"][-1]
                bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
                bar.update(1)
        if bar is not None:
            bar.close()
    model.eval()
    return history


@torch.no_grad()
def fit_alternating(model: nn.Module, train: torch.Tensor, *, max_iter: int = 2000,
                    tolerance: float = 1e-12) -> dict[str, Any]:
    """Minimise the MSE of a `LinearAutoencoder` exactly, by alternating least squares.

    For a linear model each half has a closed-form optimum given the other:
    the best decoder for encoder `W_enc` is `C W_enc.T (W_enc C W_enc.T)^-1`
    and the best encoder for decoder `W_dec` is its pseudo-inverse, where
    `C` is the covariance of the centred training images `train: (N, C, H,
    W)`. Alternating the two never increases the loss and converges to the
    minimum (Roweis 1998 showed this is subspace iteration), geometrically
    with rate `lambda_{k+1} / lambda_k`. Works in float64 and stops when the
    relative change of the loss falls below `tolerance` or after
    `max_iter` rounds. Returns `{"loss": [per round], "iterations": n}`
    (loss = MSE per pixel on `train`). Introduced in chapter 2.
    """
    if not isinstance(model, LinearAutoencoder) or model.config.tied:
        raise TypeError("fit_alternating needs an untied LinearAutoencoder (its two halves are "
                        "solved in turn); train other models with fit().")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}.")
    model._check_input(train)
    x = train.flatten(1).double().to(model.mean.device) - model.mean.double()  # (N, D), centred
    cov = x.T @ x / len(x)  # (D, D)
    total = float(torch.trace(cov))
    w_enc = model.encoder.weight.double()  # (k, D)
    history: list[float] = []
    for _ in range(max_iter):
        w_dec = torch.linalg.solve(w_enc @ cov @ w_enc.T, w_enc @ cov).T  # (D, k)
        w_enc = torch.linalg.pinv(w_dec)  # (k, D)
        # tr((I - P) C (I - P).T) / D with P = w_dec @ w_enc, without forming D x D products
        enc_cov = w_enc @ cov  # (k, D)
        residual = (total - 2 * float((enc_cov * w_dec.T).sum())
                    + float(((w_dec.T @ w_dec) * (enc_cov @ w_enc.T)).sum()))
        history.append(residual / cov.shape[0])
        if len(history) > 1 and abs(history[-2] - history[-1]) <= tolerance * abs(history[-2]):
            break
    model.encoder.weight.copy_(w_enc.to(model.encoder.weight))
    model.decoder.weight.copy_(w_dec.to(model.decoder.weight))
    model.eval()
    return {"loss": history, "iterations": len(history)}


def _check_fit_args(model, train, val, num_epochs, batch_size, lr) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(train, torch.Tensor):
        raise TypeError(f"train must be a tensor of examples (N, ...), got {type(train).__name__}; "
                        f"for a Dataset pass data.x_train.")
    if len(train) == 0:
        raise ValueError("train is empty: fit needs at least one training example.")
    if not isinstance(num_epochs, int) or num_epochs < 0:
        raise ValueError(f"num_epochs must be an integer >= 0, got {num_epochs!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    if batch_size > len(train):
        raise ValueError(f"batch_size={batch_size} is larger than the training set ({len(train)} "
                         f"examples); use batch_size <= {len(train)}.")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}.")
    for name, t in (("train", train), ("val", val)):
        if t is not None and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values; clean or drop those "
                             f"examples before training.")


def _check_finite(loss: torch.Tensor, epoch: int, step: int, steps: int, lr: float) -> None:
    if not bool(torch.isfinite(loss.detach())):
        raise TrainingDivergedError(
            f"the loss became {float(loss.detach())} at epoch {epoch}, step {step} of {steps}; training "
            f"stopped. Try a smaller learning rate (lr={lr:g} now), check the inputs for "
            f"extreme values, or make the loss numerically safer.")


def _accumulate(sums: dict[str, torch.Tensor], loss: torch.Tensor,
                parts: dict[str, torch.Tensor], n: int) -> None:
    for key, value in {"loss": loss, **parts}.items():
        value = torch.as_tensor(value).detach().float() * n
        sums[key] = sums[key] + value if key in sums else value


def _append(target: dict[str, list[float]], sums: dict[str, torch.Tensor], n: int) -> None:
    for key, value in sums.items():
        target.setdefault(key, []).append(float(value) / n)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, objective: Objective,
             batch_size: int = 1024) -> dict[str, torch.Tensor]:
    """Objective averaged over all examples of `x`, in evaluation mode, batch by batch.

    Returns `{part: mean over examples}` (0-dim tensors; "loss" plus the
    objective's parts); used by `fit` for the validation curve. Introduced
    in chapter 1.
    """
    sums: dict[str, torch.Tensor] = {}
    first = next(model.parameters(), None)
    device = x.device if first is None else first.device
    with evaluation_mode(model), fast_layout(model, device):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            loss, parts = objective(model, xb)
            _accumulate(sums, loss, parts, len(xb))
    return {k: v / len(x) for k, v in sums.items()}


def _match_layouts(opt: torch.optim.Optimizer) -> None:
    """Give each tensor of the optimiser's state the memory layout of its parameter.

    `Optimizer.load_state_dict` keeps the layout a tensor was saved in; fused
    Adam needs the moments laid out as the weights (on the CPU it would read
    them in the wrong order, on CUDA it refuses), and a checkpoint may come
    from a run whose weights were laid out otherwise (`metrics.fast_layout`).
    """
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape \
                        and value.stride() != p.stride():
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def _progress_bar(start: int, total: int, enabled: bool):
    if not enabled or total <= start:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="epochs", leave=False)


# ----------------------------------------------------------------- checkpoints

def save_checkpoint(path: str | Path, model: nn.Module, *,
                    optimizer: torch.optim.Optimizer | None = None, **state: Any) -> Path:
    """Write `model` (weights and config), `optimizer` and `state` to `path` atomically.

    The file is first written next to `path` and then renamed over it, so an
    interruption leaves the previous checkpoint intact. Everything stored is
    a tensor or a plain Python value, loadable with `weights_only=True`.
    Introduced in chapter 1.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = getattr(model, "config", None)
    payload = {
        "format_version": FORMAT_VERSION,
        "model_config": config_to_dict(config) if config is not None else None,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "rng_state": torch.get_rng_state(),
        **state,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, model: nn.Module, *,
                    optimizer: torch.optim.Optimizer | None = None,
                    settings: dict | None = None) -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint` into `model` (and `optimizer`).

    Refuses, with a `CheckpointError` that says what to do, a file that is
    missing, truncated or corrupt, written by a newer format, made for a
    model of another architecture, or (when `settings` is given) trained
    with other settings. The optimiser's state takes the memory layout of
    the model's weights as they are now. Returns the stored state dict.
    Introduced in chapter 1.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; train first (fit(..., checkpoint=...)).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__}); "
                              f"delete it and train again.") from err
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path} is not an aelib checkpoint (no format_version); "
                              f"delete it or point to the right file.")
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state['format_version']}, newer than this "
            f"aelib understands ({FORMAT_VERSION}); upgrade aelib (pip install -U) or retrain.")
    config = getattr(model, "config", None)
    stored = state.get("model_config")
    if config is not None and stored is not None and config_from_dict(stored) != config:
        raise CheckpointError(
            f"checkpoint {path} was made for a different model:\n  stored: {stored}\n  "
            f"this model: {config_to_dict(config)}\nUse the matching model, or delete the file.")
    own = model.state_dict()
    theirs = state["model_state"]
    wrong = [k for k in own if k not in theirs or theirs[k].shape != own[k].shape]
    if wrong or set(theirs) - set(own):
        raise CheckpointError(f"checkpoint {path} does not match the model's parameters "
                              f"(first mismatch: {(wrong or sorted(set(theirs) - set(own)))[0]}); "
                              f"use the matching model, or delete the file.")
    if settings is not None and state.get("settings") not in (None, settings):
        raise CheckpointError(
            f"checkpoint {path} was trained with {state['settings']}, not {settings}; resume with "
            f"the same settings, or delete the file to start afresh.")
    model.load_state_dict(theirs)
    if optimizer is not None and state.get("optimizer_state") is not None:
        optimizer.load_state_dict(state["optimizer_state"])
        _match_layouts(optimizer)  # saved in another layout (another device): as the weights are
    return state


# ----------------------------------------------------------------- caching

_SOURCE_HASH: str | None = None
#: Modules that no training code imports (figures, exercise checks, assignments, the image
#: codecs of chapter 7): editing them cannot change a trained model, so they stay out of the
#: cache key. tests/test_train.py checks that the other modules never import them.
NOT_IN_TRAINING = frozenset({"assignments.py", "check.py", "codec.py", "plot.py", "widgets.py"})


def source_hash() -> str:
    """SHA-256 of aelib's source files that training runs through, so cached checkpoints
    follow code changes (all modules but NOT_IN_TRAINING)."""
    global _SOURCE_HASH
    if _SOURCE_HASH is None:
        digest = hashlib.sha256()
        for file in sorted(Path(__file__).parent.glob("*.py")):
            if file.name in NOT_IN_TRAINING:
                continue
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
        _SOURCE_HASH = digest.hexdigest()
    return _SOURCE_HASH


def cache_path(name: str, model: nn.Module, data: Dataset, objective: Objective,
               **fit_kwargs: Any) -> Path:
    """Where `load_or_fit` keeps the checkpoint of this experiment.

    The key covers `name`, the dataset (name and a fingerprint of its
    training images), the run mode, the seed, the model config, the model's
    starting weights (`weights_digest`, taken when `load_or_fit` first saw
    the model), the objective's `cache_key`, the fit settings and
    `source_hash()`. Two chapters that share an experiment must therefore
    build the same starting point: `models.from_config(config, seed=...)`.
    """
    config = getattr(model, "config", None)
    seed = fit_kwargs.pop("seed", None)
    fingerprint = [data.name, list(data.x_train.shape), round(float(data.x_train.double().sum()), 4)]
    key = {
        "name": name,
        "data": fingerprint,
        "mode": runtime.mode(),
        "seed": runtime.get_seed() if seed is None else seed,
        "config": config_to_dict(config) if config is not None else repr(model),
        "init": getattr(model, _INIT_ATTR, None) or weights_digest(model),
        "objective": getattr(objective, "cache_key", getattr(objective, "__qualname__", "?")),
        "fit": {k: _key(v) for k, v in sorted(fit_kwargs.items())},
        "source": source_hash(),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return runtime.cache_dir() / f"{safe}-{digest}.pt"


_INIT_ATTR = "_aelib_start_weights"  # weights_digest of the model when load_or_fit first saw it
_DONE_ATTR = "_aelib_trained_as"  # the checkpoint whose finished run the model holds


def weights_digest(model: nn.Module) -> str:
    """A short SHA-256 of every tensor of `model.state_dict()` (names, dtypes, shapes, bytes).

    The same weights give the same digest on any device. `cache_path` keys
    each experiment by the digest of its starting weights, so two models that
    start from different random draws never share a checkpoint. Introduced in
    chapter 1.
    """
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{flat.dtype}|{tuple(value.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _key(value: Any) -> str:
    """A stable text for a fit setting: callables by module and qualified name, not address."""
    if callable(value):
        return getattr(value, "cache_key", f"{getattr(value, '__module__', '?')}."
                                           f"{getattr(value, '__qualname__', type(value).__name__)}")
    return repr(value)


def load_or_fit(name: str, model: nn.Module, data: Dataset, objective: Objective,
                **fit_kwargs: Any) -> dict[str, Any]:
    """Train `model` on `data` like `fit`, or load the finished run from the cache.

    `name` names the experiment (say 'ch1-s0'); with everything else that
    determines the result it forms the key of a checkpoint under
    `AELIB_CACHE_DIR` (see `cache_path`), so re-running a chapter does not
    retrain, a quick-mode run never serves a full one, and an interrupted run
    resumes. Trains on `data.x_train`, validates on `data.x_val`; the other
    keyword arguments go to `fit` (a `track` function enters the key by its
    qualified name, so give experiments that track different things
    different names). The key also names the model's starting weights:
    build each model fresh, with `models.from_config(config, seed=...)` where
    another chapter shares the experiment; a model that already holds one
    finished run is refused for another. Returns the history. Introduced in
    chapter 1.
    """
    for reserved in ("checkpoint", "val"):
        if reserved in fit_kwargs:
            raise TypeError(f"load_or_fit sets {reserved!r} itself; call fit() to choose it.")
    progress = fit_kwargs.pop("progress", None)
    device = fit_kwargs.pop("device", None)
    path = cache_path(name, model, data, objective, **fit_kwargs)
    done = getattr(model, _DONE_ATTR, None)
    if done is not None and done != path:
        raise ValueError(
            f"load_or_fit({name!r}): this model already holds the trained run {done.name}, and its "
            "checkpoint key names the weights it started from. Build a fresh model for a new "
            "experiment (models.from_config(config, seed=...)); to go on training these "
            "weights, call train.fit with a checkpoint of your own.")
    setattr(model, _INIT_ATTR, getattr(model, _INIT_ATTR, None) or weights_digest(model))
    history = fit(model, data.x_train, objective, val=data.x_val, checkpoint=path,
                  progress=progress, device=device, **fit_kwargs)
    setattr(model, _DONE_ATTR, path)
    return history


#: Adam steps the book gives each model of a comparison (full run, quick run).
COMPARISON_STEPS = {"full": 2000, "quick": 500}


def comparison_settings(n_train: int, batch_size: int = 128, lr: float = 1e-3) -> dict[str, Any]:
    """The `fit` settings every model of a comparison gets: the same number of Adam steps.

    `COMPARISON_STEPS` steps (2,000, or 500 in quick mode) of batch
    `batch_size` at learning rate `lr`, expressed as `num_epochs` over
    `n_train` training examples. Chapters that compare models use these
    settings, so a model trained in one chapter is served from the cache
    in the next. Returns `{"num_epochs", "batch_size", "lr"}` for
    `load_or_fit` / `fit_all`. Introduced in chapter 1.
    """
    steps = runtime.budget(full=COMPARISON_STEPS["full"], quick=COMPARISON_STEPS["quick"])
    return {"num_epochs": epochs_for_steps(steps, n_train, batch_size),
            "batch_size": batch_size, "lr": lr}


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps in one epoch over `n` examples: `ceil(n / batch_size)`.

    The last batch may be smaller. Introduced in chapter 1.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got {n} and {batch_size}.")
    return -(-n // batch_size)


def epochs_for_steps(steps: int, n: int, batch_size: int) -> int:
    """Smallest number of epochs over `n` examples that makes at least `steps` optimiser steps.

    The sources train for 10 epochs of the 60,000 MNIST images (4,690 steps of
    batch 128); on a smaller dataset the same number of steps takes more
    epochs. Introduced in chapter 1.
    """
    if steps < 1 or n < 1 or batch_size < 1:
        raise ValueError(f"steps, n and batch_size must be >= 1, got {steps}, {n}, {batch_size}.")
    return -(-steps // steps_per_epoch(n, batch_size))


def fit_all(prefix: str, candidates: dict[str, nn.Module], data: Dataset,
            objective: Objective | dict[str, Objective], **fit_kwargs: Any) -> dict[str, dict]:
    """`load_or_fit` every model of `candidates` (`{label: model}`); return `{label: history}`.

    `objective` is one objective for all, or `{label: objective}`. Each run is
    cached under the name `f"{prefix}-{label}"`. Used for the sweeps of the
    chapters (code size, depth, loss). Introduced in chapter 1.
    """
    histories = {}
    for label, model in candidates.items():
        obj = objective[label] if isinstance(objective, dict) else objective
        histories[label] = load_or_fit(f"{prefix}-{label}", model, data, obj, **fit_kwargs)
    return histories


def fit_one_class(prefix: str, make_model: Callable[[int], nn.Module], data: Dataset,
                  objective: Objective, **fit_kwargs: Any) -> dict[int, nn.Module]:
    """One model per class, each trained on the images of that class only: `{class: model}`.

    `make_model(c)` returns a fresh model for class `c`; it is trained with
    `load_or_fit` on `data.one_class(data, c)` under the name
    `f"{prefix}-{c}"`. This is the training half of the one-class protocol of
    anomaly detection (`metrics.one_class_auroc` is the scoring half).
    Introduced in chapter 7.
    """
    trained = {}
    for c in data.y_train.unique().tolist():
        model = make_model(c)
        load_or_fit(f"{prefix}-{c}", model, one_class(data, c), objective, **fit_kwargs)
        trained[c] = model
    return trained
