"""Auto-checks for the book's exercises: a reader's function against the reference.

Every exercise in a chapter asks for a small function (a loss, a penalty, a
noise model, a metric), and the cell after it calls the checker of the same
name, e.g. `check.kl_sparsity(my_kl_sparsity)`. A checker runs the reader's
function and the reference on several inputs (random batches, a batch of
one, extreme values, double precision) and either prints what it checked or
raises `ExerciseFailed` explaining the first mismatch in plain words: wrong
shape (expected vs got), wrong reduction (a sum where a mean is wanted,
found from the ratio of the two), a sign error, a known mistake such as a
missing term, a constant factor or offset, NaN or inf on an edge input, or
an input changed in place. A function that still raises the stub's
`NotImplementedError` is reported as not done yet, with its hint.

`EXERCISES` maps each checker's name to its exercise (number and title).
Introduced with the exercises, in every chapter.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


class ExerciseFailed(AssertionError):
    """A reader's function disagrees with the reference; the message says how."""


@dataclass(frozen=True)
class Exercise:
    number: str  # "4.2"
    title: str   # "the KL sparsity penalty"
    checker: Callable[[Callable], None]


#: checker name -> its exercise, in book order; filled by `_exercise` below.
EXERCISES: dict[str, Exercise] = {}


@dataclass
class Case:
    """One input on which the reader's function is compared with the reference."""

    label: str                   # "a batch of 8 images", said in messages
    args: dict[str, Any]         # argument name -> value, passed positionally in this order
    sizes: dict[str, int] = field(default_factory=dict)  # "the batch" -> 8: reductions to detect
    hint: str = ""               # said when the reader's result is NaN or inf here


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong implementation and what to say when the reader's output matches it."""

    fn: Callable[..., Any]
    message: str


# ----------------------------------------------------------------- the engine

def _exercise(number: str, title: str):
    def register(checker):
        EXERCISES[checker.__name__] = Exercise(number, title, checker)
        checker.__doc__ = (checker.__doc__ or "") + f"\n\nChecks exercise {number}: {title}."
        return checker
    return register


def _prefix(name: str, fn: Callable) -> str:
    ex = EXERCISES[name]
    return f"Exercise {ex.number} ({ex.title}), {getattr(fn, '__name__', 'your function')}"


def _require_function(fn: Any, name: str) -> None:
    if not callable(fn):
        shown = repr(fn)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise TypeError(f"check.{name} expects your function itself, got {type(fn).__name__} "
                        f"{shown}. Pass its name without calling it: check.{name}(my_{name}).")


def _hint_of(fn: Callable) -> str:
    """The `# Hint:` comment above the stub (or solution) in the source of `fn`, or ""."""
    from .assignments import BEGIN, CODE_STUB, hint_above

    try:
        lines = inspect.getsource(fn).splitlines()
    except (OSError, TypeError):  # no source: a built-in, or a function made by exec
        return ""
    stops = (CODE_STUB, BEGIN, "raise NotImplementedError")
    end = next((i for i, line in enumerate(lines) if line.strip().startswith(stops)), len(lines))
    return hint_above(lines[:end]) or ""


def _not_done(err: NotImplementedError, name: str, fn: Callable) -> NotImplementedError:
    """The stub (`raise NotImplementedError()`, as nbgrader writes it) is still in place."""
    ex = EXERCISES[name]
    said = str(err) or (f"Exercise {ex.number} ({ex.title}) is not done yet: "
                        f"{getattr(fn, '__name__', 'your function')} still raises the stub's "
                        f"NotImplementedError.")
    hint = _hint_of(fn) if "Hint:" not in said else ""
    return NotImplementedError(f"{said}{f' Hint: {hint}' if hint else ''} Replace the stub "
                               f"(the two lines after '# YOUR CODE HERE') with your code, run "
                               f"that cell, then run this one again.")


def _copy(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


def _call(fn: Callable, name: str, case: Case) -> Any:
    """`fn(*args)` on copies of the case's inputs; in-place changes and crashes become failures."""
    given = {k: _copy(v) for k, v in case.args.items()}
    before = {k: (_copy(v), v.requires_grad) for k, v in given.items() if isinstance(v, torch.Tensor)}
    try:
        out = fn(*given.values())
    except NotImplementedError as err:
        raise _not_done(err, name, fn) from None
    except ExerciseFailed:
        raise
    except Exception as err:
        raise ExerciseFailed(f"{_prefix(name, fn)} raised {type(err).__name__} on {case.label}: "
                             f"{err}") from err
    for k, (old, grad) in before.items():
        new = given[k]
        changed = new.shape != old.shape or not torch.equal(new.detach(), old)
        if changed or new.requires_grad != grad:
            what = "set requires_grad on" if not changed else "changed"
            raise ExerciseFailed(
                f"{_prefix(name, fn)} {what} its input `{k}` in place on {case.label}. Work on a "
                f"new tensor (x_hat - x rather than x_hat.sub_(x), x.clamp(...) rather than "
                f"x.clamp_(...), x.detach().requires_grad_() rather than x.requires_grad_()), "
                f"so the caller's data stay as they were.")
    return out


def _as_tensor(out: Any, want: Any, prefix: str, case: Case) -> torch.Tensor:
    if isinstance(want, float):  # a plain number is expected
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            return torch.tensor(float(out), dtype=torch.float64)
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            return torch.tensor(float(out), dtype=torch.float64)
        if isinstance(out, torch.Tensor):
            raise ExerciseFailed(f"{prefix}: wrong shape on {case.label}: expected a single "
                                 f"number, got a tensor of shape {tuple(out.shape)}. Average "
                                 f"over every dimension (the batch too).")
    elif isinstance(out, torch.Tensor):
        return out
    got = "None (is a `return` missing?)" if out is None else type(out).__name__
    expected = "a number" if isinstance(want, float) else f"a tensor of shape {tuple(want.shape)}"
    raise ExerciseFailed(f"{prefix} returned {got} on {case.label}; expected {expected}.")


def _shape_message(got: tuple, want: tuple) -> str:
    msg = f"expected shape {want}, got {got}."
    if want == () and got:
        msg += (" The exercise asks for a single number: reduce over every dimension, the "
                "batch included.")
    elif want and got == ():
        msg += (f" The exercise asks for one value per example ({want[0]} here): reduce over "
                f"every dimension except the first, which is the batch.")
    elif len(got) == len(want) and sorted(got) == sorted(want):
        msg += " The same sizes in another order: two dimensions are swapped."
    elif len(got) > len(want):
        msg += " You kept a dimension the exercise sums or averages over."
    elif len(got) < len(want):
        msg += " You reduced over a dimension the exercise keeps."
    return msg


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float, atol: float,
           equal_nan: bool = False) -> bool:
    if got.shape != want.shape:
        return False
    g, w = got.detach().double().cpu(), want.detach().double().cpu()
    return bool(torch.allclose(g, w, rtol=rtol, atol=atol, equal_nan=equal_nan))


def _diagnose(got: torch.Tensor, want: torch.Tensor, case: Case, atol: float) -> str:
    """Plain words for how `got` differs from `want` (same shape, both finite)."""
    g, w = got.detach().double().cpu().flatten(), want.detach().double().cpu().flatten()
    scale = float(w.abs().max()) if len(w) else 0.0
    big = w.abs() > max(1e-3 * scale, atol)
    if bool(big.any()) and bool((g[~big].abs() <= 10 * atol + 1e-3 * g.abs().max()).all()):
        r = g[big] / w[big]
        c = float(r.median())
        several = int(big.sum()) >= 2  # one number always has a "constant" ratio
        if float((r - c).abs().max()) <= 1e-3 * abs(c) + 1e-9:
            if abs(c) < 1e-9 and several:
                return "your values are all zero; is the formula's main term missing?"
            if abs(c + 1) < 1e-3:
                return ("sign error: your values are the expected ones times -1 (a loss, a "
                        "penalty or a divergence is never negative).")
            for label, s in case.sizes.items():
                if s > 1 and abs(c / s - 1) < 1e-3:
                    return (f"wrong reduction: your result is {s} times the expected one, the "
                            f"number of entries of {label}: you sum over {label} where the "
                            f"exercise takes the mean.")
                if s > 1 and abs(c * s - 1) < 1e-3:
                    return (f"wrong reduction: your result is 1/{s} of the expected one, the "
                            f"number of entries of {label}: you average over {label} where the "
                            f"exercise takes the sum.")
            extra = ""
            if abs(c - 2) < 1e-3 or abs(c - 0.5) < 1e-3:
                extra = " A factor of 2 usually means a missing or extra 1/2, or a square."
            if several:
                return (f"off by a constant factor: your values are {c:.4g} times the expected "
                        f"ones.{extra}")
    d = g - w
    offset = float(d.median())
    if len(d) >= 2 and abs(offset) > 10 * atol and float((d - offset).abs().max()) <= 10 * atol + 1e-6 * scale:
        return (f"off by a constant: your values are the expected ones {offset:+.4g}; a term of "
                f"the formula is probably missing or extra.")
    i = int(d.abs().argmax())
    index = tuple(int(v) for v in torch.unravel_index(torch.tensor(i), tuple(want.shape))) \
        if want.dim() else ()
    where = f" at index {index}" if index else ""
    return (f"wrong values: expected {float(w[i]):.6g}, got {float(g[i]):.6g}{where} (largest "
            f"difference {float(d.abs().max()):.3g}).")


def _compare(name: str, fn: Callable, reference: Callable, cases: list[Case],
             mistakes: list[Mistake] = (), rtol: float = 1e-4, atol: float = 1e-6,
             check_dtype: bool = True) -> None:
    """Run `fn` and `reference` on every case; raise on the first mismatch, else print a summary."""
    _require_function(fn, name)
    prefix = _prefix(name, fn)
    for case in cases:
        want = reference(*case.args.values())
        out = _call(fn, name, case)
        got = _as_tensor(out, want, prefix, case)
        want_t = torch.tensor(want, dtype=torch.float64) if isinstance(want, float) else want
        where = f"on {case.label}"
        same_type = not check_dtype or isinstance(want, float) or want_t.dtype == got.dtype
        values_ok = _close(got, want_t, rtol, atol)
        if values_ok and same_type:
            continue
        for mistake in [] if values_ok else mistakes:  # a known mistake: the most specific message
            try:
                with torch.no_grad():
                    alt = mistake.fn(*[_copy(v) for v in case.args.values()])
                alt_t = alt if isinstance(alt, torch.Tensor) else torch.tensor(float(alt), dtype=torch.float64)
            except Exception:  # the mistake does not apply to this input
                continue
            if _close(got, alt_t, rtol, atol, equal_nan=True):
                raise ExerciseFailed(f"{prefix} {where}: {mistake.message}")
        if got.shape != want_t.shape:
            raise ExerciseFailed(f"{prefix}: wrong shape {where}: "
                                 f"{_shape_message(tuple(got.shape), tuple(want_t.shape))}")
        if not same_type:
            if want_t.is_floating_point() and got.is_floating_point():
                raise ExerciseFailed(
                    f"{prefix} returns {got.dtype} for {want_t.dtype} input {where}. Keep the "
                    f"input's precision: make new tensors with torch.zeros_like(x), "
                    f"x.new_tensor(...) or dtype=x.dtype instead of a fixed dtype.")
            raise ExerciseFailed(f"{prefix} returns a {got.dtype} tensor {where}; expected "
                                 f"{want_t.dtype}{' (integers: finish with .long())' if not want_t.is_floating_point() else ''}.")
        if not bool(torch.isfinite(got.detach().double()).all()) and \
                bool(torch.isfinite(want_t.double()).all()):
            hint = f" {case.hint}" if case.hint else ""
            raise ExerciseFailed(f"{prefix} returns NaN or inf {where}, where the reference is "
                                 f"finite.{hint}")
        raise ExerciseFailed(f"{prefix} {where}: {_diagnose(got, want_t, case, atol)}")
    labels = "; ".join(c.label for c in cases)
    _say(f"✓ {prefix} matches the reference on {len(cases)} inputs: {labels}.")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int, seed: int, dtype=torch.float32, side: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, side, side, generator=_gen(seed), dtype=dtype)


def _image_sizes(x: torch.Tensor) -> dict[str, int]:
    n, d = x.shape[0], x[0].numel()
    return {"the batch": n, "the pixels of each image": d, "every element (batch x pixels)": n * d}


def _code_sizes(h: torch.Tensor) -> dict[str, int]:
    n, k = h.shape
    return {"the batch": n, "the code units": k, "every element (batch x units)": n * k}


def _say(text: str) -> None:
    """Print a success message wrapped to 78 columns (it shows on the website too)."""
    print(textwrap.fill(text, width=78, subsequent_indent="  ", break_long_words=False,
                        break_on_hyphens=False))


def _numbers(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{float(v):.3g}" for v in t.flatten()) + "]"


def _fail(name: str, fn: Callable, message: str) -> ExerciseFailed:
    return ExerciseFailed(f"{_prefix(name, fn)}: {message}")


# ----------------------------------------------------------------- chapter 1

@_exercise("1.1", "the mean squared error")
def mse(fn: Callable) -> None:
    """`fn(x_hat, x)`: the mean of `(x_hat - x)**2` over every element, a 0-dim tensor."""
    cases = []
    for label, n, dtype, same in (("a batch of 8 images", 8, torch.float32, False),
                                  ("a batch of one image", 1, torch.float32, False),
                                  ("8 images in double precision", 8, torch.float64, False),
                                  ("a perfect reconstruction (x_hat equal to x)", 4, torch.float32, True)):
        x = _images(n, 1, dtype)
        x_hat = x.clone() if same else _images(n, 2, dtype)
        cases.append(Case(label, {"x_hat": x_hat, "x": x}, _image_sizes(x)))
    _compare("mse", fn, lambda x_hat, x: (x_hat - x).square().mean(), cases, [
        Mistake(lambda x_hat, x: (x_hat - x).abs().mean(),
                "you take absolute values, not squares: that is the L1 loss (mean absolute "
                "error). Square the differences."),
        Mistake(lambda x_hat, x: (x_hat - x).square().mean().sqrt(),
                "you take a square root at the end: that is the root mean squared error. The "
                "MSE has no square root."),
    ])


@_exercise("1.2", "the binary cross-entropy")
def bce(fn: Callable) -> None:
    """`fn(x_hat, x)`: mean of `-[x log x_hat + (1 - x) log(1 - x_hat)]`, finite at x_hat = 0 or 1."""
    g = _gen(3)
    x = torch.rand(8, 1, 8, 8, generator=g)
    x_hat = 0.05 + 0.9 * torch.rand(8, 1, 8, 8, generator=g)
    binary = (torch.rand(4, 1, 8, 8, generator=g) < 0.3).float()
    cases = [
        Case("a batch of 8 images", {"x_hat": x_hat, "x": x}, _image_sizes(x)),
        Case("a batch of one image", {"x_hat": x_hat[:1], "x": x[:1]}, _image_sizes(x[:1])),
        Case("8 images in double precision", {"x_hat": x_hat.double(), "x": x.double()},
             _image_sizes(x)),
        Case("black-and-white images predicted exactly (x_hat exactly 0 or 1)", {"x_hat": binary.clone(), "x": binary}, _image_sizes(binary),
             hint="0 * log(0) is NaN in floating point: clamp the logs at -100 as PyTorch "
                  "does (torch.log(x_hat).clamp(min=-100)), or clamp x_hat to [1e-7, 1 - 1e-7]."),
    ]

    def reference(x_hat, x):
        return F.binary_cross_entropy(x_hat, x)

    _compare("bce", fn, reference, cases, [
        Mistake(lambda x_hat, x: -(x * torch.log(x_hat).clamp(min=-100)).mean(),
                "the (1 - x) log(1 - x_hat) term is missing. Without it the loss is smallest "
                "when x_hat = 1 everywhere, an all-white image (erratum 8)."),
        Mistake(lambda x_hat, x: F.binary_cross_entropy(x, x_hat),
                "the arguments are swapped: take the logs of the predictions x_hat and weight "
                "them by the targets x."),
    ], atol=1e-5)


# ----------------------------------------------------------------- chapter 2

def _pca_reference(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean(dim=0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    return mean, vh[:k]


def _pca_data(n: int, d: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = _gen(seed)
    basis = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q
    scales = torch.linspace(3.0, 0.2, d, dtype=torch.float64)  # distinct variances
    z = torch.randn(n, d, generator=g, dtype=torch.float64) * scales
    return (z @ basis.T + 5.0).to(dtype)  # far from the origin: centring matters


def _tiny_autoencoder(seed: int) -> torch.nn.Module:
    """A 16-4-16 autoencoder of 4x4 images that returns the reconstruction itself."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4), torch.nn.ReLU(),
                                   torch.nn.Linear(4, 16), torch.nn.Sigmoid(),
                                   torch.nn.Unflatten(1, (1, 4, 4)))


def _sgd_steps(model: torch.nn.Module, batches: list[torch.Tensor], *, zero_grad: bool = True,
               reduce: str = "mean") -> tuple[list[float], list[torch.Tensor]]:
    """Losses before each step and flat weights after it, for plain SGD (lr 0.5) on the MSE."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    said, weights = [], []
    for x in batches:
        if zero_grad:
            opt.zero_grad()
        squares = (model(x) - x).square()
        loss = squares.mean() if reduce == "mean" else squares.sum()
        loss.backward()
        opt.step()
        said.append(loss.item())
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return said, weights


@_exercise("1.4", "one training step")
def train_step(fn: Callable) -> None:
    """`fn(model, x, optimizer) -> float`: one gradient step on the mean squared error of
    `model(x)` against `x` with the given optimizer; returns the loss before the step."""
    import copy

    name = "train_step"
    _require_function(fn, name)
    prefix = _prefix(name, fn)
    batches = [_images(8, 40 + i, side=4) for i in range(3)]
    start = _tiny_autoencoder(41)
    want_loss, want_w = _sgd_steps(copy.deepcopy(start), batches)
    piled = _sgd_steps(copy.deepcopy(start), batches, zero_grad=False)[1]
    summed = _sgd_steps(copy.deepcopy(start), batches, reduce="sum")[1]
    model = copy.deepcopy(start)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for i, x in enumerate(batches, start=1):
        before = torch.cat([p.detach().flatten() for p in model.parameters()])
        given = x.clone()
        try:
            out = fn(model, given, opt)
        except NotImplementedError as err:
            raise _not_done(err, name, fn) from None
        except RuntimeError as err:
            hint = (" The loss has no graph to backpropagate through: compute it from "
                    "model(x) outside torch.no_grad(), and do not .detach() it or call .item() "
                    "before loss.backward()." if "does not require grad" in str(err) else "")
            raise _fail(name, fn, f"raised RuntimeError at step {i}: {err}.{hint}") from err
        except Exception as err:
            raise _fail(name, fn, f"raised {type(err).__name__} at step {i}: {err}") from err
        if not torch.equal(given, x):
            raise _fail(name, fn, "changed the batch `x` in place; the target of the loss must "
                                  "stay the clean input.")
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        if out is None:
            raise _fail(name, fn, "returned None (is a `return` missing?); return the loss "
                                  "as a number, loss.item().")
        if isinstance(out, torch.Tensor):
            raise _fail(name, fn, "returns a tensor; return loss.item(), a Python float, so "
                                  "that summing the losses of an epoch does not keep every "
                                  "step's graph alive.")
        if not isinstance(out, (float, int)):
            raise _fail(name, fn, f"returns {type(out).__name__}; return loss.item(), a float.")
        if torch.equal(after, before):
            raise _fail(name, fn, f"the weights did not change at step {i}. One step is: "
                                  f"optimizer.zero_grad(), loss = ..., loss.backward(), "
                                  f"optimizer.step(), in this order (zeroing the gradients "
                                  f"between backward and step throws them away).")
        if torch.allclose(after, want_w[i - 1], rtol=1e-5, atol=1e-6):
            if not math.isclose(float(out), want_loss[i - 1], rel_tol=1e-5, abs_tol=1e-7):
                raise _fail(name, fn, f"the step is right but it returned {float(out):.6g}, "
                                      f"not the loss before the step, {want_loss[i - 1]:.6g}; "
                                      f"return loss.item() of the loss you backpropagated.")
            continue
        if torch.allclose(after, piled[i - 1], rtol=1e-5, atol=1e-6):
            raise _fail(name, fn, f"at step {i} the gradients of the earlier steps were still "
                                  f"there: PyTorch adds each backward() to .grad, so call "
                                  f"optimizer.zero_grad() before loss.backward().")
        if torch.allclose(after, summed[i - 1], rtol=1e-5, atol=1e-6):
            raise _fail(name, fn, "you sum the squared errors; the exercise takes their mean "
                                  "(.mean()), which keeps the step size independent of the "
                                  "batch size and the number of pixels.")
        gap = float((after - want_w[i - 1]).abs().max())
        raise _fail(name, fn, f"after step {i} the weights differ from one step of the given "
                              f"optimizer on the mean squared error of model(x) against x by "
                              f"up to {gap:.3g}. Use the optimizer you are given (do not make "
                              f"a new one) and the loss ((model(x) - x) ** 2).mean().")
    _say(f"✓ {prefix} passes: {len(batches)} steps of SGD give the reference weights, the "
         f"loss before each step comes back as a float, and x is left as it was.")


@_exercise("2.1", "PCA by the SVD")
def pca(fn: Callable) -> None:
    """`fn(x, k)` with `x: (N, D)`: `(mean (D,), components (k, D))`, orthonormal rows by variance."""
    _require_function(fn, "pca")
    prefix = _prefix("pca", fn)
    cases = [Case("200 examples of 10 features, k = 3", {"x": _pca_data(200, 10, 0), "k": 3}),
             Case("k = 1", {"x": _pca_data(200, 10, 1), "k": 1}),
             Case("double precision, k = 4", {"x": _pca_data(300, 6, 2, torch.float64), "k": 4})]
    for case in cases:
        x, k = case.args["x"], case.args["k"]
        out = _call(fn, "pca", case)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ExerciseFailed(f"{prefix} must return two things, (mean, components); got "
                                 f"{type(out).__name__} on {case.label}.")
        mean, comps = out
        ref_mean, ref_comps = _pca_reference(x.double(), k)
        n, d = x.shape
        for what, got, want in (("the mean", mean, ref_mean), ("the components", comps, ref_comps)):
            if not isinstance(got, torch.Tensor):
                raise ExerciseFailed(f"{prefix}: {what} is a {type(got).__name__}, expected a tensor.")
            if got.shape != want.shape:
                msg = _shape_message(tuple(got.shape), tuple(want.shape))
                if what == "the components" and tuple(got.shape) == (k, n):
                    msg += " Those are columns of U; the axes are the first k rows of Vh."
                raise ExerciseFailed(f"{prefix}: wrong shape of {what} on {case.label}: {msg}")
        if not torch.allclose(mean.double(), ref_mean, atol=1e-4):
            raise ExerciseFailed(f"{prefix} on {case.label}: the mean is wrong; it is the mean of "
                                 f"each feature over the examples, x.mean(dim=0).")
        c = comps.detach().double()
        gram = c @ c.T
        if not torch.allclose(gram.diagonal(), torch.ones(k, dtype=torch.float64), atol=1e-3):
            raise ExerciseFailed(f"{prefix} on {case.label}: the components are not unit vectors "
                                 f"(lengths {_numbers(gram.diagonal().sqrt())}); "
                                 f"rows of Vh are, do not scale them by the singular values.")
        uncentred = torch.linalg.svd(x.double(), full_matrices=False)[2][:k]
        smallest = torch.linalg.svd(x.double() - ref_mean, full_matrices=False)[2][-k:]
        cos = (c * ref_comps).sum(dim=1).abs()
        if bool((cos > 1 - 1e-4).all()):
            continue
        if bool(((c * uncentred).sum(dim=1).abs() > 1 - 1e-4).all()):
            raise ExerciseFailed(f"{prefix} on {case.label}: your components come from the "
                                 f"uncentred data; subtract the mean before the SVD (else the "
                                 f"first axis points at the mean, not along the spread).")
        if bool(((c @ smallest.T).abs().amax(dim=1) > 1 - 1e-4).all()):
            raise ExerciseFailed(f"{prefix} on {case.label}: you kept the axes of smallest "
                                 f"variance. torch.linalg.svd sorts the singular values in "
                                 f"decreasing order, so the first k rows of Vh are the ones.")
        worst = int(cos.argmin())
        raise ExerciseFailed(f"{prefix} on {case.label}: component {worst + 1} is not the "
                             f"principal axis (|cosine| with it {float(cos[worst]):.4f}, expected "
                             f"1; the sign does not matter).")
    _say(f"✓ {prefix} matches the reference on {len(cases)} inputs "
          f"({'; '.join(c.label for c in cases)}): mean, shapes, unit length and every axis up "
          f"to sign.")


def _angles_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from .metrics import principal_angles
    return principal_angles(a, b)


@_exercise("2.2", "principal angles between subspaces")
def principal_angles(fn: Callable) -> None:
    """`fn(a, b)` with `a: (D, p)`, `b: (D, q)`: the min(p, q) angles in radians, smallest first."""
    g = _gen(4)
    a = torch.randn(10, 3, generator=g)
    b = torch.randn(10, 3, generator=g)
    mix = torch.tensor([[1.0, 0.5, 0.0], [0.0, 2.0, 0.3], [0.2, 0.0, 1.5]])
    cases = [
        Case("two random 3-d subspaces of R^10", {"a": a, "b": b}),
        Case("one subspace in two different bases (the angles are all 0)",
             {"a": a, "b": a @ mix},
             hint="Rounding can push a cosine just above 1, where arccos is NaN: clamp the "
                  "cosines to [-1, 1] first."),
        Case("a 2-d and a 4-d subspace", {"a": torch.randn(10, 2, generator=g),
                                           "b": torch.randn(10, 4, generator=g)}),
        Case("double precision", {"a": a.double(), "b": b.double()}),
    ]

    def cosines_unorthonormalised(a, b):
        return torch.arccos(torch.linalg.svdvals(a.T @ b).clamp(-1, 1))

    _compare("principal_angles", fn, lambda a, b: _angles_reference(a, b).to(a.dtype), cases, [
        Mistake(lambda a, b: torch.rad2deg(_angles_reference(a, b)),
                "your angles are in degrees; return radians (torch.deg2rad converts)."),
        Mistake(lambda a, b: _angles_reference(a, b).flip(0),
                "your angles are in decreasing order; return the smallest first."),
        Mistake(lambda a, b: torch.cos(_angles_reference(a, b)),
                "you return the cosines of the angles (the singular values); take their arccos."),
        Mistake(cosines_unorthonormalised,
                "you took the SVD of a.T @ b with the raw columns. The singular values are "
                "cosines only when both bases are orthonormal: orthonormalise a and b first "
                "with torch.linalg.qr."),
    ], atol=1e-3, rtol=0.0, check_dtype=False)  # "the check allows 1e-3 radians"


def _linear_ae_reference(x: torch.Tensor, mean: torch.Tensor, w_e: torch.Tensor,
                         w_d: torch.Tensor) -> torch.Tensor:
    return (mean + (x.flatten(1) - mean) @ w_e.T @ w_d.T).view_as(x)


@_exercise("2.4", "a linear autoencoder module")
def linear_autoencoder(fn: Callable) -> None:
    """`fn(mean, k) -> nn.Module` for images of `D = mean.numel()` pixels: the module's
    `forward(x)` returns `mean + W_d W_e (x - mean)` shaped like `x: (N, C, H, W)`, with two
    weight matrices `W_e: (k, D)`, `W_d: (D, k)`, no biases, and `mean` kept as a buffer."""
    name = "linear_autoencoder"
    _require_function(fn, name)
    prefix = _prefix(name, fn)
    for shape, k, seed in (((1, 6, 6), 4, 20), ((1, 4, 4), 2, 21)):
        d = math.prod(shape)
        g = _gen(seed)
        mean = 0.2 + 0.6 * torch.rand(d, generator=g)
        x = torch.rand(5, *shape, generator=g)
        sizes = f"D = {d}, k = {k}"
        given = mean.clone()
        try:
            model = fn(given, k)
        except NotImplementedError as err:
            raise _not_done(err, name, fn) from None
        except Exception as err:
            raise _fail(name, fn, f"raised {type(err).__name__} while building the model "
                                  f"({sizes}): {err}") from err
        if not torch.equal(given, mean):
            raise _fail(name, fn, "changed `mean` in place; keep a copy of it in the model "
                                  "(mean.clone()) and leave the caller's tensor as it was.")
        if not isinstance(model, torch.nn.Module):
            raise _fail(name, fn, f"returned {type(model).__name__}; return the model itself, "
                                  f"an instance of your nn.Module subclass.")
        params = dict(model.named_parameters())
        shapes = ", ".join(f"{n} {tuple(p.shape)}" for n, p in params.items()) or "none"
        for n, p in params.items():
            if p.numel() == d and torch.allclose(p.detach().flatten().float(), mean):
                raise _fail(name, fn, f"the mean is a learned parameter (`{n}`), so the "
                                      f"optimiser would move it. It is fixed, like PCA's: "
                                      f"self.register_buffer('mean', mean.clone()).")
        biases = [f"{n} {tuple(p.shape)}" for n, p in params.items() if p.dim() == 1]
        if biases:
            raise _fail(name, fn, f"your layers have biases ({', '.join(biases)}); the "
                                  f"chapter's linear autoencoder has none: "
                                  f"nn.Linear(..., bias=False). Subtracting the fixed mean "
                                  f"does the job biases would do.")
        count = sum(p.numel() for p in params.values())
        w_e = [p for p in params.values() if tuple(p.shape) == (k, d)]
        w_d = [p for p in params.values() if tuple(p.shape) == (d, k)]
        if count != 2 * d * k or len(w_e) != 1 or len(w_d) != 1:
            extra = (" Tensors that are not nn.Parameter (nor inside a layer such as "
                     "nn.Linear) are not trained." if count == 0 else "")
            raise _fail(name, fn, f"with {sizes} expected two weight matrices, W_e of shape "
                                  f"(k, D) = {(k, d)} and W_d of shape (D, k) = {(d, k)}: "
                                  f"2 D k = {2 * d * k} parameters. Got {count}: {shapes}."
                                  f"{extra}")
        label = f"a batch of {tuple(x.shape)} images ({sizes})"
        try:
            with torch.no_grad():
                out = model(x.clone())
        except NotImplementedError as err:
            raise _not_done(err, name, fn) from None
        except Exception as err:
            flat_ok = False
            try:
                with torch.no_grad():
                    flat_ok = isinstance(model(x.flatten(1)), torch.Tensor)
            except Exception:
                pass
            if flat_ok:
                raise _fail(name, fn, f"the model fails on {label} but runs on flattened rows "
                                      f"{tuple(x.flatten(1).shape)}: flatten each image first "
                                      f"(x.flatten(1)) and reshape the result back to images "
                                      f"(.view_as(x)).") from err
            raise _fail(name, fn, f"the model raised {type(err).__name__} on {label}: {err}. "
                                  f"The encoder maps the D pixel values of an image to k "
                                  f"numbers, nn.Linear(D, k, bias=False); the decoder maps k "
                                  f"back to D, nn.Linear(k, D, bias=False): check the order "
                                  f"of the sizes.") from err
        if not isinstance(out, torch.Tensor):
            raise _fail(name, fn, f"forward returned {type(out).__name__}; it must return the "
                                  f"reconstruction itself, one tensor shaped like x (as "
                                  f"TinyAutoencoder of chapter 1 does).")
        if out.shape != x.shape:
            if tuple(out.shape) == tuple(x.flatten(1).shape):
                raise _fail(name, fn, f"the output on {label} is flat, {tuple(out.shape)}: "
                                      f"reshape it back to images with .view_as(x) (or "
                                      f"nn.Unflatten).")
            raise _fail(name, fn, f"wrong shape of the output on {label}: "
                                  f"{_shape_message(tuple(out.shape), tuple(x.shape))}")
        we, wd = w_e[0].detach(), w_d[0].detach()
        want = _linear_ae_reference(x, mean, we, wd)
        if _close(out, want, 1e-4, 1e-5):
            continue
        flat = x.flatten(1)
        batch_mean = flat.mean(dim=0)
        known = [
            (flat @ we.T @ wd.T, "there is no centring: subtract the mean before the encoder "
                                 "and add it back after the decoder, x_hat = mean + W_d W_e "
                                 "(x - mean)."),
            ((flat - mean) @ we.T @ wd.T, "you subtract the mean before the encoder but do not "
                                          "add it back after the decoder."),
            (mean + flat @ we.T @ wd.T, "you add the mean after the decoder but do not "
                                        "subtract it before the encoder."),
            (batch_mean + (flat - batch_mean) @ we.T @ wd.T,
             "you centre on the mean of the batch. Use the fixed mean you are given (the "
             "training images' mean), as PCA does: a reconstruction must not depend on the "
             "other images of its batch."),
            (torch.sigmoid(want.flatten(1)), "there is a sigmoid on the output; the linear "
                                             "autoencoder has no activation anywhere."),
            (mean + ((flat - mean) @ we.T).relu() @ wd.T,
             "there is a ReLU on the code; the linear autoencoder has no activation anywhere "
             "(a ReLU would zero every negative coordinate of z)."),
        ]
        for alt, message in known:
            if _close(out.flatten(1), alt, 1e-4, 1e-5):
                raise _fail(name, fn, f"on {label}: {message}")
        with torch.no_grad():
            u = x.flatten(1) - mean
            plus = model((mean + u).view_as(x)).flatten(1)
            minus = model((mean - u).view_as(x)).flatten(1)
        if not _close(plus + minus, 2 * mean.expand_as(plus), 1e-4, 1e-5):
            raise _fail(name, fn, f"on {label} the output is not a linear function of "
                                  f"x - mean: is there an activation (ReLU, sigmoid, tanh)? "
                                  f"The linear autoencoder has none.")
        raise _fail(name, fn, f"on {label}: {_diagnose(out, want, Case(label, {}), 1e-5)} The "
                              f"expected output is mean + W_d W_e (x - mean), computed from "
                              f"your model's own two weight matrices.")
    mean_kept = [b for b in model.buffers() if b.numel() == d
                 and torch.allclose(b.detach().flatten().float(), mean)]
    if not mean_kept:
        raise _fail(name, fn, "the values are right, but the mean is not a buffer of the "
                              "model: store it with self.register_buffer('mean', "
                              "mean.clone()). A plain tensor attribute does not move with "
                              "model.to(device) and is not saved in model.state_dict().")
    _say(f"✓ {prefix} passes: for D = 36, k = 4 and D = 16, k = 2, two weight matrices "
         f"W_e (k, D) and W_d (D, k), 2 D k parameters and no biases, the mean kept as a "
         f"buffer; on batches of 5 images the output has the images' shape and equals "
         f"mean + W_d W_e (x - mean) computed from your own weights.")


# ----------------------------------------------------------------- chapter 3

def _stochastic_basics(name: str, fn: Callable, make_args: Callable[[torch.Generator], dict],
                       label: str) -> torch.Tensor:
    """Shape, dtype, no in-place change, and reproducibility through the generator."""
    prefix = _prefix(name, fn)
    case = Case(label, make_args(_gen(0)))
    ref = case.args["x"] if "x" in case.args else case.args["mu"]
    out = _as_tensor(_call(fn, name, case), ref, prefix, case)
    if out.shape != ref.shape:
        raise _fail(name, fn, f"wrong shape on {label}: {_shape_message(tuple(out.shape), tuple(ref.shape))}")
    if out.dtype != ref.dtype:
        raise _fail(name, fn, f"returns {out.dtype} for {ref.dtype} input on {label}; keep the "
                              f"input's dtype (pass dtype=x.dtype to torch.randn / torch.rand).")
    again = _call(fn, name, Case(label, make_args(_gen(0))))
    if not torch.equal(out.detach(), again.detach()):
        raise _fail(name, fn, "two calls with identically seeded generators gave different "
                              "results: your function ignores the `generator` argument. Pass "
                              "it on: torch.randn(x.shape, generator=generator, dtype=x.dtype).")
    other = _call(fn, name, Case(label, make_args(_gen(1))))
    if torch.equal(out.detach(), other.detach()):
        raise _fail(name, fn, "generators with different seeds gave the same result: the "
                              "output is not random.")
    return out


@_exercise("3.1", "additive Gaussian noise")
def gaussian_noise(fn: Callable) -> None:
    """`fn(x, sigma, generator)`: `x + sigma * N(0, 1)` per pixel, clipped to [0, 1], a new tensor."""
    name = "gaussian_noise"
    _require_function(fn, name)
    gray = torch.full((200, 1, 14, 14), 0.5)
    _stochastic_basics(name, fn, lambda g: {"x": gray, "sigma": 0.1, "generator": g},
                       "200 gray images, sigma = 0.1")
    same = _call(fn, name, Case("sigma = 0", {"x": gray[:4], "sigma": 0.0, "generator": _gen(0)}))
    if not torch.allclose(same, gray[:4]):
        raise _fail(name, fn, "with sigma = 0 the images must come back unchanged; your noise "
                              "does not scale with sigma (or has a non-zero mean).")
    noisy = _call(fn, name, Case("", {"x": gray, "sigma": 0.1, "generator": _gen(2)}))
    noise = (noisy - gray).double()
    mean, std = float(noise.mean()), float(noise.std())
    if abs(mean) > 0.003:
        raise _fail(name, fn, f"the noise has mean {mean:.4f} on gray images, expected 0. "
                              f"torch.rand is uniform on [0, 1); Gaussian noise is torch.randn.")
    if abs(std - 0.01) < 0.001:
        raise _fail(name, fn, f"the noise has standard deviation {std:.4f} with sigma = 0.1: "
                              f"you used sigma**2 (the variance) as the scale. Multiply "
                              f"N(0, 1) draws by sigma itself.")
    if abs(std / 0.1 - 1) > 0.03:
        raise _fail(name, fn, f"the noise has standard deviation {std:.4f} with sigma = 0.1; "
                              f"expected 0.1: add sigma * torch.randn(...).")
    strong = _call(fn, name, Case("", {"x": gray, "sigma": 1.0, "generator": _gen(3)}))
    lo, hi = float(strong.min()), float(strong.max())
    if lo < 0 or hi > 1:
        raise _fail(name, fn, f"with sigma = 1 your images range over [{lo:.2f}, {hi:.2f}]; "
                              f"pixel values must stay in [0, 1]: clip with .clamp(0, 1).")
    _call(fn, name, Case("8 images in double precision",
                         {"x": _images(8, 0, torch.float64), "sigma": 0.3, "generator": _gen(0)}))
    _say(f"✓ {_prefix(name, fn)} passes: shape and dtype kept, input untouched, reproducible "
          f"with a seeded generator, noise mean {mean:+.4f} and standard deviation {std:.4f} "
          f"for sigma = 0.1, unchanged at sigma = 0, clipped to [0, 1] at sigma = 1.")


@_exercise("3.2", "masking noise")
def masking_noise(fn: Callable) -> None:
    """`fn(x, fraction, generator)`: a random `fraction` of each image's pixels set to 0."""
    name = "masking_noise"
    _require_function(fn, name)
    gray = torch.full((200, 1, 14, 14), 0.5)
    label = "200 gray images, fraction = 0.3"
    out = _as_tensor(_call(fn, name, Case(label, {"x": gray, "fraction": 0.3, "generator": _gen(2)})),
                     gray, _prefix(name, fn), Case(label, {}))
    values = torch.unique(out)
    if not bool(((values == 0) | (values == 0.5)).all()):
        shown = ", ".join(f"{float(v):g}" for v in values[:4])
        raise _fail(name, fn, f"on gray images (0.5) every pixel must stay 0.5 or become 0, but "
                              f"your output has values {shown}. Masking sets chosen pixels to 0 "
                              f"and leaves the others exactly as they were.")
    share = float((out == 0).double().mean())
    if abs(share - 0.7) < 0.02:
        raise _fail(name, fn, f"{100 * share:.0f}% of the pixels are zero with fraction = 0.3: "
                              f"you zeroed the pixels you should keep. Zero where "
                              f"torch.rand(...) < fraction.")
    if abs(share - 0.3) > 0.02:
        raise _fail(name, fn, f"{100 * share:.1f}% of the pixels are zero with fraction = 0.3; "
                              f"expected about 30%.")
    _stochastic_basics(name, fn, lambda g: {"x": gray, "fraction": 0.3, "generator": g}, label)
    masks = (out == 0).flatten(1)
    if bool((masks == masks[:1]).all()):
        raise _fail(name, fn, "every image got the same mask; draw one random number per pixel "
                              "of every image (a tensor of x's full shape).")
    for fraction, expect in ((0.0, gray[:4]), (1.0, torch.zeros_like(gray[:4]))):
        got = _call(fn, name, Case(f"fraction = {fraction:g}",
                                   {"x": gray[:4], "fraction": fraction, "generator": _gen(0)}))
        if not torch.equal(got, expect):
            raise _fail(name, fn, f"with fraction = {fraction:g} the result should be "
                                  f"{'the images unchanged' if fraction == 0 else 'all zeros'}.")
    _say(f"✓ {_prefix(name, fn)} passes: shape and dtype kept, input untouched, reproducible "
          f"with a seeded generator, {100 * share:.1f}% of the pixels zeroed for fraction = 0.3 "
          f"and the rest unchanged, a different mask per image, fractions 0 and 1 exact.")


def _dae_loss(model: torch.nn.Module, x: torch.Tensor, sigma: float, seed: int, *,
              target: str = "clean", corrupt: bool = True, clip: bool = True,
              reduce: str = "mean", scale: float | None = None, one_noise: bool = False,
              uniform: bool = False) -> torch.Tensor:
    """The denoising loss with noise from `_gen(seed)`, and the variants of known mistakes."""
    g = _gen(seed)
    draw = torch.rand if uniform else torch.randn
    noise = draw(x.shape[1:] if one_noise else x.shape, generator=g)
    noisy = x + (sigma if scale is None else scale) * noise
    noisy = noisy.clamp(0, 1) if clip else noisy
    second = (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)
    given, tgt = {"clean": (noisy, x), "noisy": (noisy, noisy), "fresh": (noisy, second),
                  "fresh_first": (second, noisy)}[target]
    squares = (model(given if corrupt else x).x_hat - tgt) ** 2
    return squares.mean() if reduce == "mean" else squares.sum()


@_exercise("3.4", "the denoising objective")
def denoising_objective(fn: Callable) -> None:
    """`fn(model, x, sigma, generator)`: the mean squared error of `model(x_noisy).x_hat` against
    the clean batch `x`, with `x_noisy = (x + sigma * N(0, 1)).clamp(0, 1)` drawn from `generator`
    afresh on every call; a 0-dim tensor that carries the gradient."""
    name = "denoising_objective"
    _require_function(fn, name)
    prefix = _prefix(name, fn)
    from .models import MLPConfig, from_config

    model = from_config(MLPConfig(latent_dim=4, hidden_dims=(8,), input_shape=(1, 4, 4)),
                        seed=43)
    with torch.no_grad():  # a sensitive model: every variant of the loss differs clearly
        for p in model.parameters():
            p.mul_(3.0)
    x = _images(8, 44, side=4)
    sigma = 0.3
    label = "a batch of 8 images of 4x4 pixels, sigma = 0.3"

    def run(seed: int) -> Any:
        given = x.clone()
        try:
            out = fn(model, given, sigma, _gen(seed))
        except NotImplementedError as err:
            raise _not_done(err, name, fn) from None
        except Exception as err:
            raise _fail(name, fn, f"raised {type(err).__name__} on {label}: {err}") from err
        if not torch.equal(given, x):
            raise _fail(name, fn, "changed the batch x in place; it is the target of the "
                                  "loss and must stay clean. Corrupt a new tensor: "
                                  "x + sigma * noise, not x += ... or x.add_(...).")
        return out

    out = run(0)
    if out is None:
        raise _fail(name, fn, "returned None (is a `return` missing?); return the loss.")
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        raise _fail(name, fn, "returns a Python number; return the loss tensor itself (no "
                              ".item()), so that training can call loss.backward() on it.")
    if not isinstance(out, torch.Tensor):
        raise _fail(name, fn, f"returned {type(out).__name__}; return the loss, a 0-dim "
                              f"tensor.")
    if out.dim() != 0:
        raise _fail(name, fn, f"wrong shape on {label}: "
                              f"{_shape_message(tuple(out.shape), ())}")
    if not out.requires_grad:
        raise _fail(name, fn, "the loss carries no gradient: compute it from the model's "
                              "output outside torch.no_grad(), and do not .detach() it.")
    want = _dae_loss(model, x, sigma, 0)
    if _close(out, want, 1e-5, 1e-7):
        again, other = run(0), run(1)
        if not _close(again, want, 1e-5, 1e-7):
            raise _fail(name, fn, "two calls with identically seeded generators gave "
                                  "different losses: draw the noise from `generator`.")
        if _close(other, want, 1e-5, 1e-7):
            raise _fail(name, fn, "generators with different seeds gave the same loss: the "
                                  "same noise on every call. Draw it afresh on every call "
                                  "from the `generator` you are given: "
                                  "torch.randn(x.shape, generator=generator).")
        if not _close(other, _dae_loss(model, x, sigma, 1), 1e-5, 1e-7):
            raise _fail(name, fn, "right with one seed, wrong with another: draw the noise "
                                  "from the `generator` you are given, on every call.")
        _say(f"✓ {prefix} passes: on {label} it gives the reference loss for two seeds (the "
             f"mean squared error of model(x_noisy).x_hat against the clean x, fresh noise from "
             f"the generator on every call), a 0-dim tensor with a gradient, and x is left "
             f"as it was.")
        return
    known = [
        (dict(target="noisy"), "you compare the output with the noisy batch; the target is "
                               "the clean x, which the model never sees."),
        (dict(corrupt=False), "you feed the clean batch to the model: it must see the "
                              "corrupted images (x + sigma * noise, clipped) and reconstruct "
                              "the clean ones."),
        (dict(target="fresh"), "the target is corrupted too (with noise of its own); only "
                               "the input is corrupted, the target is the clean x."),
        (dict(target="fresh_first"), "the target is corrupted too (with noise of its own); "
                                     "only the input is corrupted, the target is the clean x."),
        (dict(reduce="sum"), "you sum the squared errors; take their mean (.mean()), so the "
                             "loss does not grow with the batch size and the image size."),
        (dict(one_noise=True), "every image got the same noise: draw one noise value per "
                               "pixel of every image, a tensor of x's full shape."),
        (dict(scale=sigma**2), "you used sigma**2 (the variance) as the scale of the noise; "
                               "multiply N(0, 1) draws by sigma itself."),
        (dict(uniform=True), "Gaussian noise is torch.randn; torch.rand is uniform on [0, 1)."),
        (dict(clip=False), "the noisy images are not clipped to [0, 1], the pixel range of "
                           "the data: finish the corruption with .clamp(0, 1)."),
    ]
    for kwargs, message in known:
        with torch.no_grad():
            alt = _dae_loss(model, x, sigma, 0, **kwargs)
        if _close(out, alt, 1e-5, 1e-7):
            raise _fail(name, fn, f"on {label}: {message}")
    if not _close(run(0), out, 1e-5, 1e-7):
        raise _fail(name, fn, "two calls with identically seeded generators gave different "
                              "losses: your function ignores the `generator` argument. Pass "
                              "it on: torch.randn(x.shape, generator=generator).")
    raise _fail(name, fn, f"on {label}: {_diagnose(out, want, Case(label, {}), 1e-7)}")


# ----------------------------------------------------------------- chapter 4

def _sigmoid_codes(n: int, k: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.sigmoid(2 * torch.randn(n, k, generator=_gen(seed), dtype=dtype) - 2)


@_exercise("4.1", "the L1 activity penalty")
def l1_activity(fn: Callable) -> None:
    """`fn(h)` with `h: (N, K)`: `sum_j |h_nj|` per example, averaged over the batch (0-dim)."""
    signed = torch.randn(16, 12, generator=_gen(5))
    cases = [Case("16 codes of 12 units with negative values (tanh or linear units)",
                  {"h": signed}, _code_sizes(signed)),
             Case("sigmoid codes", {"h": _sigmoid_codes(16, 12, 6)}, _code_sizes(signed)),
             Case("a batch of one code", {"h": signed[:1]}, _code_sizes(signed[:1])),
             Case("double precision", {"h": signed.double()}, _code_sizes(signed))]
    _compare("l1_activity", fn, lambda h: h.abs().sum(dim=1).mean(), cases, [
        Mistake(lambda h: h.sum(dim=1).mean(),
                "you sum the activations themselves, so negative ones cancel positive ones. "
                "Take absolute values first: the L1 norm is sum_j |h_j|."),
        Mistake(lambda h: h.square().sum(dim=1).mean(),
                "you square the activations: that is an L2 penalty. The L1 penalty sums "
                "absolute values."),
    ])


def _kl_reference(h: torch.Tensor, rho: float) -> torch.Tensor:
    q = h.mean(dim=0).clamp(1e-6, 1 - 1e-6)
    return (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()


@_exercise("4.2", "the KL sparsity penalty")
def kl_sparsity(fn: Callable) -> None:
    """`fn(h, rho)`: `sum_j KL(rho || rho_hat_j)`, `rho_hat_j = mean_n h_nj` clamped to [1e-6, 1 - 1e-6]."""
    h = _sigmoid_codes(32, 16, 7)
    dead = h.clone()
    dead[:, 0], dead[:, 1] = 0.0, 1.0
    sizes = _code_sizes(h)
    cases = [Case("32 sigmoid codes of 16 units, rho = 0.05", {"h": h, "rho": 0.05}, sizes),
             Case("rho = 0.2", {"h": h, "rho": 0.2}, sizes),
             Case("a batch of one code", {"h": h[:1], "rho": 0.05}, _code_sizes(h[:1])),
             Case("a unit that is 0 and one that is 1 for the whole batch",
                  {"h": dead, "rho": 0.05}, sizes,
                  hint="log(rho / 0) is inf: clamp rho_hat to [1e-6, 1 - 1e-6] before the logs."),
             Case("double precision", {"h": h.double(), "rho": 0.05}, sizes)]

    def per_example(h, rho):
        q = h.clamp(1e-6, 1 - 1e-6)
        return (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum(dim=1).mean()

    def reversed_kl(h, rho):
        q = h.mean(dim=0).clamp(1e-6, 1 - 1e-6)
        return (q * torch.log(q / rho) + (1 - q) * torch.log((1 - q) / (1 - rho))).sum()

    def first_term(h, rho):
        q = h.mean(dim=0).clamp(1e-6, 1 - 1e-6)
        return (rho * torch.log(rho / q)).sum()

    _compare("kl_sparsity", fn, _kl_reference, cases, [
        Mistake(first_term,
                "the (1 - rho) log((1 - rho) / (1 - rho_hat)) term is missing: KL between two "
                "Bernoulli distributions has one term for 'on' and one for 'off'."),
        Mistake(reversed_kl,
                "you computed KL(rho_hat || rho); the penalty is KL(rho || rho_hat), with the "
                "target rho in front of the logs."),
        Mistake(per_example,
                "you compare each example's activation with rho. The penalty compares each "
                "unit's mean activation over the batch, rho_hat = h.mean(dim=0), with rho."),
    ], atol=1e-5)


def _shallow_model(seed: int, dtype=torch.float32, units: int = 6, side: int = 4) -> torch.nn.Module:
    """A small model of chapters 4-5: `side`x`side` images -> `units` sigmoid units -> sigmoid output."""
    from .models import ShallowConfig, from_config

    config = ShallowConfig(latent_dim=units, input_shape=(1, side, side))
    return from_config(config, seed=seed).to(dtype)


def _mse_reference(out: Any, x: torch.Tensor) -> torch.Tensor:
    return (out.x_hat - x).square().mean()


def _param_grads(model: torch.nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _same_grads(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(u, v, rtol=1e-4, atol=1e-7) for u, v in zip(a, b))


def _backpropagate(name: str, fn: Callable, run: Callable[[], Any], what: str,
                   requirement: str) -> Any:
    """`run()`, which calls the student's `fn` and backpropagates; a crash becomes a failure."""
    try:
        return run()
    except NotImplementedError as err:
        raise _not_done(err, name, fn) from None
    except Exception as err:
        raise _fail(name, fn, f"backpropagating through your {what} failed "
                              f"({type(err).__name__}: {err}); {requirement}.") from err


def _require_loss_tensor(name: str, fn: Callable, out: Any, label: str, reach: str,
                         advice: str) -> None:
    """A loss for training: a tensor (not a float) that carries the graph of its inputs."""
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        raise _fail(name, fn, f"returns a number ({type(out).__name__}) on {label}. Return the "
                              f"loss tensor itself, without .item(): train.fit calls "
                              f"loss.backward() on it.")
    if isinstance(out, torch.Tensor) and not out.requires_grad:
        raise _fail(name, fn, f"returns a tensor without a graph on {label} (made under "
                              f"torch.no_grad(), or detached), so no gradient can {reach}. "
                              f"{advice}")


def _check_objective(name: str, fn: Callable, reference: Callable, cases: list[Case],
                     mistakes: list[Mistake], cut: list[Mistake]) -> None:
    """An objective `fn(model, x, ...) -> loss`: a tensor with a graph, the reference's value on
    every case (`mistakes` name known wrong values), then the reference's gradient with respect
    to every parameter on the first case (`cut` name known wrong gradients of a right value)."""
    _require_function(fn, name)
    prefix = _prefix(name, fn)
    first = cases[0]
    out = _call(fn, name, first)
    _require_loss_tensor(name, fn, out, first.label, "flow back to the model",
                         "Compute the loss from model(x) as it is.")
    with contextlib.redirect_stdout(io.StringIO()):  # its ✓ line: the gradient comes first
        _compare(name, fn, reference, cases, mistakes, atol=1e-6)
    args = first.args
    model = args["model"]
    got_grads = _param_grads(model, _call(fn, name, first))
    if _same_grads(got_grads, _param_grads(model, reference(*args.values()))):
        labels = "; ".join(c.label for c in cases)
        _say(f"✓ {prefix} matches the reference on {len(cases)} inputs ({labels}), and so does "
             f"its gradient with respect to every parameter of the model: it is an objective "
             f"train.fit can minimise.")
        return
    for mistake in cut:
        if _same_grads(got_grads, _param_grads(model, mistake.fn(*args.values()))):
            raise _fail(name, fn, f"the loss has the right value on {first.label}, but "
                                  f"{mistake.message}")
    names = [n for n, _ in model.named_parameters()]
    raise _fail(name, fn, f"the loss has the right value on {first.label}, but not the right "
                          f"gradient (compared with respect to {', '.join(names)}): part of it "
                          f"is cut from the graph (.detach(), .data, torch.no_grad(), or a "
                          f"number turned back into a tensor), so train.fit would minimise "
                          f"something else.")


def _sparse_reference(model: torch.nn.Module, x: torch.Tensor, weight: float,
                      rho: float) -> torch.Tensor:
    out = model(x)
    return _mse_reference(out, x) + weight * _kl_reference(out.z, rho)


@_exercise("4.4", "the sparse objective")
def sparse_objective(fn: Callable) -> None:
    """`fn(model, x, weight, rho) -> loss`: the mean squared error of `model(x).x_hat` against `x`
    plus `weight * sum_j KL(rho || rho_hat_j)`, `rho_hat_j` the batch mean of unit j of
    `model(x).z` (clamped to [1e-6, 1 - 1e-6]); a 0-dim tensor with a graph."""
    x = _images(8, 12, side=4)
    dead = _shallow_model(14)
    with torch.no_grad():
        dead.hidden.bias.fill_(-40.0)  # every unit off: rho_hat below 1e-6 before the clamp
    cases = [Case("a model of 16 pixels and 6 sigmoid units, 8 images, weight 0.1, rho 0.05",
                  {"model": _shallow_model(13), "x": x, "weight": 0.1, "rho": 0.05}),
             Case("weight 3 and rho 0.2", {"model": _shallow_model(15), "x": x, "weight": 3.0,
                                           "rho": 0.2}),
             Case("a batch of one image", {"model": _shallow_model(13), "x": x[:1], "weight": 0.1,
                                           "rho": 0.05}),
             Case("a model whose units are all off (rho_hat below 1e-6)",
                  {"model": dead, "x": x, "weight": 0.1, "rho": 0.05},
                  hint="log(rho / rho_hat) is inf at rho_hat = 0: clamp rho_hat to [1e-6, "
                       "1 - 1e-6] before the logs."),
             Case("double precision", {"model": _shallow_model(13, torch.float64),
                                       "x": x.double(), "weight": 0.1, "rho": 0.05})]

    def kl_of(q, rho):  # per unit, q already a batch mean
        return rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))

    def with_recon(recon, penalty):
        def wrong(model, x, weight, rho):
            out = model(x)
            return recon(out, x, weight) + penalty(out, x, weight, rho)
        return wrong

    mse_, kl_ = (lambda o, x, w: _mse_reference(o, x),
                 lambda o, x, w, rho: w * _kl_reference(o.z, rho))
    mistakes = [
        Mistake(with_recon(mse_, lambda o, x, w, rho: w * _kl_reference(o.x_hat.flatten(1), rho)),
                "the penalty is computed on the reconstructions model(x).x_hat. Sparsity is a "
                "property of the code: put the penalty on model(x).z."),
        Mistake(with_recon(mse_, lambda o, x, w, rho: _kl_reference(o.z, rho)),
                "the penalty is added without its weight: the loss is recon + weight * penalty."),
        Mistake(with_recon(lambda o, x, w: w * _mse_reference(o, x),
                           lambda o, x, w, rho: _kl_reference(o.z, rho)),
                "the weight multiplies the reconstruction term. It belongs to the penalty: "
                "recon + weight * penalty."),
        Mistake(with_recon(mse_, lambda o, x, w, rho: w * kl_of(o.z.mean(0).clamp(1e-6, 1 - 1e-6),
                                                                  rho).mean()),
                "you average the KL over the code units; the penalty sums it over them."),
        Mistake(with_recon(mse_, lambda o, x, w, rho: w * kl_of(rho, o.z.mean(0).clamp(
                    1e-6, 1 - 1e-6)).sum()),
                "you computed KL(rho_hat || rho); the penalty is KL(rho || rho_hat), with the "
                "target rho in front of the logs."),
        Mistake(with_recon(mse_, lambda o, x, w, rho: w * kl_of(
                    o.z.clamp(1e-6, 1 - 1e-6), rho).sum(dim=1).mean()),
                "you compare each example's activation with rho. The penalty compares each "
                "unit's mean activation over the batch, rho_hat = z.mean(dim=0), with rho."),
        Mistake(with_recon(mse_, lambda o, x, w, rho: w * o.z.abs().sum(dim=1).mean()),
                "that is the L1 activity penalty (exercise 4.1); this exercise asks for the KL "
                "penalty towards the target rho."),
        Mistake(with_recon(lambda o, x, w: (o.x_hat - x).square().flatten(1).mean(dim=1).sum(), kl_),
                "you sum the reconstruction error over the batch. The reconstruction term is "
                "the mean over every pixel of every image (losses.mse), so that the weight "
                "does not depend on the batch size."),
        Mistake(with_recon(lambda o, x, w: (o.x_hat - x).square().sum(), kl_),
                "you sum the squared errors over every pixel and image. The reconstruction "
                "term is their mean (losses.mse), so that the weight does not depend on the "
                "batch size or the image size."),
        Mistake(with_recon(mse_, lambda o, x, w, rho: w * kl_of(o.z.mean(0), rho).sum()),
                "clamp rho_hat to [1e-6, 1 - 1e-6] before the logs, as in exercise 4.2: a unit "
                "that is silent on the whole batch must give a large but finite penalty."),
    ]
    cut = [Mistake(with_recon(mse_, lambda o, x, w, rho: w * _kl_reference(o.z.detach(), rho)),
                   "no gradient of the penalty reaches the encoder: the codes were detached "
                   "(.detach(), .data or torch.no_grad()) before the penalty, so training would "
                   "minimise the reconstruction error alone. Use model(x).z as it is.")]
    _check_objective("sparse_objective", fn, _sparse_reference, cases, mistakes, cut)


# ----------------------------------------------------------------- chapter 5

@_exercise("5.1", "the contractive penalty in closed form")
def sigmoid_jacobian_norm(fn: Callable) -> None:
    """`fn(h, W)` with `h: (N, K)` sigmoid outputs, `W: (K, D)`: `||dh/dx||_F^2` per example, `(N,)`."""
    g = _gen(8)
    h = _sigmoid_codes(8, 12, 9)
    w = 0.3 * torch.randn(12, 20, generator=g)
    saturated = (torch.rand(4, 12, generator=g) < 0.5).float()
    sizes = {"the batch": 8}
    cases = [Case("8 codes of 12 units, W of shape (12, 20)", {"h": h, "W": w}, sizes),
             Case("a batch of one code", {"h": h[:1], "W": w}),
             Case("saturated units (h exactly 0 or 1: no slope)", {"h": saturated, "W": w}),
             Case("double precision", {"h": h.double(), "W": w.double()}, sizes)]
    _compare("sigmoid_jacobian_norm", fn,
             lambda h, W: (h * (1 - h)).square() @ W.square().sum(dim=1), cases, [
                 Mistake(lambda h, W: (h * (1 - h)) @ W.square().sum(dim=1),
                         "h (1 - h) is not squared. Row j of the Jacobian is h_j (1 - h_j) "
                         "times row j of W, so its squared norm has (h_j (1 - h_j))**2."),
                 Mistake(lambda h, W: (h * (1 - h)).square() @ W.sum(dim=1),
                         "W is not squared: the squared norm of row j of W is "
                         "W[j].square().sum()."),
                 Mistake(lambda h, W: ((h * (1 - h)).square() @ W.square().sum(dim=1)).sqrt(),
                         "you return the Frobenius norm; the penalty is its square (no square "
                         "root)."),
                 Mistake(lambda h, W: h.square() @ W.square().sum(dim=1),
                         "the sigmoid's slope is h (1 - h), not h."),
             ], atol=1e-6)


def _toy_encoder(d: int, k: int, seed: int, dtype=torch.float32) -> Callable[[torch.Tensor], torch.Tensor]:
    g = _gen(seed)
    w1 = torch.randn(6, d, generator=g, dtype=dtype) / math.sqrt(d)
    w2 = torch.randn(k, 6, generator=g, dtype=dtype)

    def encoder(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.tanh(x @ w1.T) @ w2.T)

    return encoder


def _jacobian_reference(encoder, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.autograd.functional.jacobian(encoder, xi[None])[0, :, 0]
                        for xi in x])


@_exercise("5.2", "the encoder's Jacobian by autograd")
def encoder_jacobian(fn: Callable) -> None:
    """`fn(encoder, x)` with `x: (N, D)`, `encoder: (N, D) -> (N, K)`: Jacobians `(N, K, D)`."""
    g = _gen(10)
    x = torch.randn(5, 7, generator=g)
    enc = _toy_encoder(7, 3, 11)
    cases = [Case("5 inputs of 7 features, a 3-unit encoder", {"encoder": enc, "x": x}),
             Case("a batch of one input", {"encoder": enc, "x": x[:1]}),
             Case("double precision", {"encoder": _toy_encoder(7, 3, 11, torch.float64),
                                       "x": x.double()})]
    _compare("encoder_jacobian", fn, _jacobian_reference, cases, [
        Mistake(lambda e, x: _jacobian_reference(e, x).transpose(1, 2),
                "your Jacobians are transposed: row k of each (K, D) Jacobian is the gradient "
                "of code unit k with respect to the D inputs."),
        Mistake(lambda e, x: _jacobian_reference(e, x).sum(dim=1),
                "you differentiate the sum of the code units (one backward pass of h.sum()), "
                "which adds the Jacobian's rows together; take one gradient per unit."),
    ], atol=1e-5)


def _contractive_reference(model: torch.nn.Module, x: torch.Tensor, weight: float) -> torch.Tensor:
    out = model(x)
    h, w = out.z, model.encoder_weight
    return _mse_reference(out, x) + weight * ((h * (1 - h)).square() @ w.square().sum(dim=1)).mean()


@_exercise("5.4", "the contractive objective")
def contractive_objective(fn: Callable) -> None:
    """`fn(model, x, weight) -> loss`: the mean squared error of `model(x).x_hat` against `x` plus
    `weight` times the batch mean of `||dh/dx||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2`, with
    `h = model(x).z` and `W = model.encoder_weight`; a 0-dim tensor with a graph."""
    x = _images(8, 16, side=4)
    cases = [Case("a model of 16 pixels and 6 sigmoid units, 8 images, weight 0.1",
                  {"model": _shallow_model(17), "x": x, "weight": 0.1}),
             Case("weight 3", {"model": _shallow_model(18), "x": x, "weight": 3.0}),
             Case("a batch of one image", {"model": _shallow_model(17), "x": x[:1], "weight": 0.1}),
             Case("double precision", {"model": _shallow_model(17, torch.float64),
                                       "x": x.double(), "weight": 0.1})]

    def wrong(recon=_mse_reference, slope=lambda h: (h * (1 - h)).square(),
              rows=lambda m: m.encoder_weight.square().sum(dim=1), per_example=lambda j: j,
              reduce=lambda j: j.mean(), weighted=lambda w, r, p: r + w * p):
        def objective(model, x, weight):
            out = model(x)
            penalty = reduce(per_example(slope(out.z) @ rows(model)))
            return weighted(weight, recon(out, x), penalty)
        return objective

    mistakes = [
        Mistake(wrong(slope=lambda h: h * (1 - h)),
                "h (1 - h) is not squared. Row j of the Jacobian is h_j (1 - h_j) times row j "
                "of W, so its squared norm has (h_j (1 - h_j))**2."),
        Mistake(wrong(rows=lambda m: m.encoder_weight.sum(dim=1)),
                "W is not squared: the squared norm of row j of W is W[j].square().sum()."),
        Mistake(wrong(slope=lambda h: h.square()), "the sigmoid's slope is h (1 - h), not h."),
        Mistake(wrong(per_example=lambda j: j.sqrt()),
                "you take the Frobenius norm of each Jacobian; the penalty is its square (no "
                "square root)."),
        Mistake(wrong(rows=lambda m: m.decoder_weight.square().sum(dim=0)),
                "you used the decoder's matrix. The code h = sigmoid(W x + b) depends on the "
                "input through the encoder's W = model.encoder_weight, shape (K, D)."),
        Mistake(wrong(reduce=lambda j: j.sum()),
                "you sum the penalty over the batch; take its mean, like the reconstruction "
                "term's, so that the weight does not depend on the batch size."),
        Mistake(wrong(weighted=lambda w, r, p: r + p),
                "the penalty is added without its weight: the loss is recon + weight * penalty."),
        Mistake(wrong(weighted=lambda w, r, p: w * r + p),
                "the weight multiplies the reconstruction term. It belongs to the penalty: "
                "recon + weight * penalty."),
        Mistake(wrong(recon=lambda o, x: (o.x_hat - x).square().flatten(1).mean(dim=1).sum()),
                "you sum the reconstruction error over the batch. The reconstruction term is "
                "the mean over every pixel of every image (losses.mse)."),
    ]
    cut = [Mistake(wrong(slope=lambda h: (h.detach() * (1 - h.detach())).square()),
                   "the codes h in the penalty are detached (.detach(), .data or "
                   "torch.no_grad()), so the gradient that flattens the sigmoid's slope never "
                   "reaches the encoder. Use model(x).z as it is."),
           Mistake(wrong(rows=lambda m: m.encoder_weight.detach().square().sum(dim=1)),
                   "the weights W in the penalty are detached, so the gradient that shrinks "
                   "the rows of W never reaches them. Use model.encoder_weight as it is."),
           Mistake(wrong(slope=lambda h: (h.detach() * (1 - h.detach())).square(),
                         rows=lambda m: m.encoder_weight.detach().square().sum(dim=1)),
                   "no gradient of the penalty reaches the model: h and W were both detached, "
                   "so training would minimise the reconstruction error alone.")]
    _check_objective("contractive_objective", fn, _contractive_reference, cases, mistakes, cut)


# ----------------------------------------------------------------- chapter 6

def _kl_gauss_reference(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return torch.distributions.kl_divergence(q, p).sum(dim=1)


@_exercise("6.1", "the Gaussian KL divergence")
def gaussian_kl(fn: Callable) -> None:
    """`fn(mu, logvar)` with `(N, K)` each: KL(N(mu, exp(logvar)) || N(0, I)) per example, `(N,)`."""
    g = _gen(12)
    mu, lv = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    sizes = {"the batch": 8, "the code units": 4}
    cases = [Case("8 codes of 4 units", {"mu": mu, "logvar": lv}, sizes),
             Case("a batch of one code", {"mu": mu[:1], "logvar": lv[:1]}, {"the code units": 4}),
             Case("the prior itself (mu = 0, logvar = 0: KL is 0)",
                  {"mu": torch.zeros(3, 4), "logvar": torch.zeros(3, 4)}),
             Case("extreme log-variances (-20 and 10)",
                  {"mu": mu[:2], "logvar": torch.tensor([[-20.0, 10.0, 0.0, -5.0]] * 2)},
                  hint="Use logvar directly where the formula has log(sigma^2), instead of "
                       "taking the log of exp(logvar)."),
             Case("double precision", {"mu": mu.double(), "logvar": lv.double()}, sizes)]
    _compare("gaussian_kl", fn, _kl_gauss_reference, cases, [
        Mistake(lambda mu, lv: 0.5 * (mu.square() + lv.exp() - lv).sum(dim=1),
                "the -1 in (mu^2 + sigma^2 - 1 - log sigma^2) / 2 is missing; without it the "
                "KL of the prior with itself is not 0."),
        Mistake(lambda mu, lv: 0.5 * (mu.square() + lv.exp() - 1).sum(dim=1),
                "the -log sigma^2 term (-logvar) is missing."),
        Mistake(lambda mu, lv: 0.5 * (lv.exp() - 1 - lv).sum(dim=1),
                "the mu^2 term is missing: a code far from 0 must cost more."),
        Mistake(lambda mu, lv: 0.5 * (mu.square() + lv - 1 - lv.log()).sum(dim=1),
                "you used logvar as the variance; the variance is exp(logvar)."),
    ], atol=1e-5)


@_exercise("6.2", "the reparameterised sample")
def reparameterize(fn: Callable) -> None:
    """`fn(mu, logvar, generator)`: `mu + exp(logvar / 2) * eps`, `eps ~ N(0, I)`, differentiable."""
    name = "reparameterize"
    _require_function(fn, name)
    n = 20000
    mu0 = torch.tensor([0.0, 2.0, -1.0]).repeat(n, 1)
    std0 = torch.tensor([1.0, 2.0, 0.5])
    lv0 = (2 * std0.log()).repeat(n, 1)
    _stochastic_basics(name, fn, lambda g: {"mu": mu0[:64], "logvar": lv0[:64], "generator": g},
                       "64 codes of 3 units")
    mu, logvar = mu0[:16].clone().requires_grad_(), lv0[:16].clone().requires_grad_()
    _backpropagate(name, fn, lambda: fn(mu, logvar, _gen(0)).sum().backward(), "sample",
                   "the sample must be a differentiable function of mu and logvar")
    for what, t in (("mu", mu), ("logvar", logvar)):
        if t.grad is None or not bool((t.grad != 0).any()):
            raise _fail(name, fn, f"no gradient reaches {what}. Draw eps ~ N(0, I) (no gradient "
                                  f"needed) and return mu + std * eps with std = "
                                  f"torch.exp(0.5 * logvar); torch.normal(mu, std) and detached "
                                  f"tensors block the gradient.")
    z = _call(fn, name, Case("", {"mu": mu0, "logvar": lv0, "generator": _gen(5)})).detach()
    mean, std = z.mean(dim=0), z.std(dim=0)
    if not torch.allclose(mean, mu0[0], atol=0.05):
        raise _fail(name, fn, f"over {n} samples the mean is {_numbers(mean)}, "
                              f"expected mu = {mu0[0].tolist()}: the noise must have mean 0 "
                              f"(torch.randn, not torch.rand).")
    if torch.allclose(std, std0.square(), rtol=0.03):
        raise _fail(name, fn, f"the standard deviations are {_numbers(std)}, the "
                              f"variances {std0.square().tolist()}: you used exp(logvar), the "
                              f"variance, as the scale. The standard deviation is "
                              f"exp(0.5 * logvar).")
    if torch.allclose(std, (2 * std0.log()).abs(), rtol=0.03):
        raise _fail(name, fn, "the scale is logvar itself; take exp(0.5 * logvar).")
    if not torch.allclose(std, std0, rtol=0.03):
        raise _fail(name, fn, f"the standard deviations are {_numbers(std)}, "
                              f"expected {std0.tolist()} = exp(0.5 * logvar).")
    tiny = _call(fn, name, Case("logvar = -30", {"mu": mu0[:8], "logvar": torch.full((8, 3), -30.0),
                                                 "generator": _gen(0)}))
    if not torch.allclose(tiny, mu0[:8], atol=1e-4):
        raise _fail(name, fn, "with logvar = -30 (almost no noise) the sample must equal mu.")
    _say(f"✓ {_prefix(name, fn)} passes: shape and dtype kept, inputs untouched, reproducible "
          f"with a seeded generator, gradients reach mu and logvar; over {n} samples the means are "
          f"{_numbers(mean)} (mu = {_numbers(mu0[0])}) and the standard deviations "
          f"{_numbers(std)} (expected {_numbers(std0)}).")


def _vae_loss_reference(x: torch.Tensor, decoder: Callable, mu: torch.Tensor, logvar: torch.Tensor,
                        eps: torch.Tensor, *, scale: str = "std", sample: bool = True,
                        per_image: str = "sum", both_terms: bool = True, kl: bool = True,
                        kl_sign: float = 1.0, kl_over_batch: str = "mean",
                        recon_over_batch: str = "mean") -> torch.Tensor:
    """The negative ELBO averaged over the batch, and the variants of known mistakes."""
    std = {"std": torch.exp(0.5 * logvar), "var": torch.exp(logvar), "logvar": logvar}[scale]
    z = mu + std * eps if sample else mu  # (N, K)
    x_hat = decoder(z)
    if both_terms:
        bce = F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1)  # (N, D)
    else:
        bce = -(x * torch.log(x_hat)).flatten(1)
    recon = bce.sum(dim=1) if per_image == "sum" else bce.mean(dim=1)  # (N,)
    divergence = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=1)  # (N,)
    total = recon.mean() if recon_over_batch == "mean" else recon.sum()
    if kl:
        total = total + kl_sign * (divergence.mean() if kl_over_batch == "mean" else divergence.sum())
    return total


def _vae_decoder(seed: int, dtype=torch.float32) -> torch.nn.Module:
    """A small VAE decoder: 3 code units -> 8 ReLU units -> 4x4 sigmoid pixels, weights scaled up
    so that every variant of the loss differs clearly."""
    from .models import VAEConfig, from_config

    decoder = from_config(VAEConfig(latent_dim=3, hidden_dims=(8,), input_shape=(1, 4, 4)),
                          seed=seed).decoder.to(dtype)
    with torch.no_grad():
        for p in decoder.parameters():
            p.mul_(2.0)
    return decoder


@_exercise("6.4", "the VAE loss with the reparameterised sample")
def vae_loss(fn: Callable) -> None:
    """`fn(x, decoder, mu, logvar, eps) -> loss`: with `z = mu + exp(logvar / 2) * eps` and
    `x_hat = decoder(z)`, the binary cross-entropy of `x_hat` against `x` summed over each image's
    pixels plus `KL(N(mu, exp(logvar)) || N(0, I))` summed over the code units, both averaged over
    the batch: the negative ELBO in nats per image, a 0-dim tensor with a graph."""
    name = "vae_loss"
    _require_function(fn, name)
    prefix = _prefix(name, fn)
    g = _gen(61)
    x = _images(8, 62, side=4)
    mu, logvar = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    eps = torch.randn(8, 3, generator=g)
    decoder = _vae_decoder(63)
    sizes = {"the batch": 8}
    cases = [Case("8 images of 4x4 pixels, codes of 3 units", {"x": x, "decoder": decoder, "mu": mu,
                                                               "logvar": logvar, "eps": eps}, sizes),
             Case("a batch of one image", {"x": x[:1], "decoder": decoder, "mu": mu[:1],
                                           "logvar": logvar[:1], "eps": eps[:1]}),
             Case("double precision", {"x": x.double(), "decoder": _vae_decoder(63, torch.float64),
                                       "mu": mu.double(), "logvar": logvar.double(),
                                       "eps": eps.double()}, sizes)]
    first = cases[0]
    out = _call(fn, name, first)
    _require_loss_tensor(name, fn, out, first.label, "reach the decoder",
                         "Compute the loss from decoder(z) as it is.")
    again = _call(fn, name, first)
    if isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor) and \
            out.shape == again.shape and not _close(out, again, 1e-6, 1e-7):
        raise _fail(name, fn, "two calls with the same inputs gave different losses: use the "
                              "eps you are given (z = mu + exp(0.5 * logvar) * eps) instead of "
                              "drawing new noise, so that the loss can be checked.")

    def variant(**kwargs):
        return lambda x, d, mu, lv, eps: _vae_loss_reference(x, d, mu, lv, eps, **kwargs)

    mistakes = [
        Mistake(variant(kl=False), "the KL term is missing. The negative ELBO is the "
                                   "reconstruction term plus KL(q(z|x) || N(0, I)); without the "
                                   "KL nothing keeps the codes near the prior."),
        Mistake(variant(kl_sign=-1.0), "you subtract the KL. The negative ELBO adds it "
                                       "(recon + KL): it is the price paid for information in "
                                       "the code, and it is never negative."),
        Mistake(variant(scale="var"), "you used exp(logvar), the variance, as the scale of eps; "
                                      "the standard deviation is exp(0.5 * logvar)."),
        Mistake(variant(scale="logvar"), "the scale of eps is logvar itself; take "
                                         "exp(0.5 * logvar), the standard deviation."),
        Mistake(variant(sample=False), "you decoded mu itself. Decode the reparameterised "
                                       "sample z = mu + exp(0.5 * logvar) * eps: without it the "
                                       "loss ignores logvar's effect on the reconstructions."),
        Mistake(variant(per_image="mean"), "you average the cross-entropy over the pixels. The "
                                           "negative ELBO sums -log p(x|z) over the pixels of "
                                           "each image, as the KL sums over the code units: "
                                           "both are nats per image."),
        Mistake(variant(kl_over_batch="sum"), "the KL is summed over the batch. Average it over "
                                              "the images, like the reconstruction term: the "
                                              "loss is in nats per image."),
        Mistake(variant(recon_over_batch="sum"), "the reconstruction term is summed over the "
                                                 "batch. Average it over the images, like the KL: "
                                                 "the loss is in nats per image."),
        Mistake(variant(recon_over_batch="sum", kl_over_batch="sum"),
                "you sum the loss over the batch; take its mean over the images, so that it "
                "reads as nats per image and does not grow with the batch size."),
        Mistake(variant(both_terms=False), "the (1 - x) log(1 - x_hat) term of the binary "
                                           "cross-entropy is missing (erratum 8): use "
                                           "F.binary_cross_entropy or both terms."),
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # its ✓ line: the gradient comes first
        _compare(name, fn, _vae_loss_reference, cases, mistakes, atol=1e-5)
    # the gradient reaches mu, logvar and the decoder's weights, as the reference's does
    leaves = [mu.clone().requires_grad_(), logvar.clone().requires_grad_()]
    params = list(decoder.parameters())
    got_grads = _backpropagate(
        name, fn, lambda: torch.autograd.grad(fn(x.clone(), decoder, leaves[0], leaves[1],
                                                 eps.clone()), leaves + params, allow_unused=True),
        "loss", "it must be a differentiable function of mu, logvar and the decoder's weights")
    want_grads = torch.autograd.grad(_vae_loss_reference(x, decoder, *leaves, eps), leaves + params)
    for what, gr in zip(("mu", "logvar"), got_grads):
        if gr is None or not bool((gr != 0).any()):
            raise _fail(name, fn, f"the loss has the right value, but no gradient reaches "
                                  f"{what}. Build z = mu + exp(0.5 * logvar) * eps from mu and "
                                  f"logvar as they are (no .detach(), torch.normal or "
                                  f"torch.no_grad()).")

    def same(grads, wanted):
        return all(gr is not None and torch.allclose(gr, w, rtol=1e-4, atol=1e-6)
                   for gr, w in zip(grads, wanted))

    detached = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    z_cut = (detached[0] + torch.exp(0.5 * detached[1]) * eps).detach()
    cut_loss = (F.binary_cross_entropy(decoder(z_cut), x, reduction="none").flatten(1).sum(dim=1)
                + 0.5 * (detached[0].square() + detached[1].exp() - 1 - detached[1]).sum(dim=1)).mean()
    cut_grads = torch.autograd.grad(cut_loss, list(detached) + params)
    if not same(got_grads, want_grads) and same(got_grads, cut_grads):
        raise _fail(name, fn, "the loss has the right value, but the sample z is cut from the "
                              "graph (.detach(), .data, torch.no_grad() or torch.normal), so no "
                              "gradient of the reconstruction term reaches mu and logvar: only "
                              "the KL would train the encoder. Build z = mu + exp(0.5 * logvar) "
                              "* eps from mu and logvar as they are.")
    if not same(got_grads, want_grads):
        raise _fail(name, fn, "the loss has the right value, but not the right gradient with "
                              "respect to mu, logvar and the decoder's weights: part of it is "
                              "cut from the graph (.detach(), .data, torch.no_grad(), or a "
                              "number turned back into a tensor), so train.fit would minimise "
                              "something else.")
    labels = "; ".join(c.label for c in cases)
    _say(f"✓ {prefix} matches the reference on {len(cases)} inputs ({labels}), and so does its "
         f"gradient with respect to mu, logvar and the decoder's weights: the negative ELBO in "
         f"nats per image, with the reparameterised sample.")


# ----------------------------------------------------------------- chapter 7

def _cosine_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


@_exercise("7.1", "cosine similarity")
def cosine_similarity(fn: Callable) -> None:
    """`fn(a, b)` with `a: (Q, F)`, `b: (M, F)`: all cosine similarities, `(Q, M)`."""
    g = _gen(13)
    a = torch.randn(5, 8, generator=g) * torch.tensor([[1.0], [3.0], [0.2], [5.0], [1.5]])
    b = torch.randn(7, 8, generator=g) * torch.linspace(0.5, 4.0, 7)[:, None]
    cases = [Case("5 queries and 7 database rows of 8 features, rows of different lengths",
                  {"a": a, "b": b}),
             Case("a single query", {"a": a[:1], "b": b}),
             Case("double precision", {"a": a.double(), "b": b.double()})]
    _compare("cosine_similarity", fn, _cosine_reference, cases, [
        Mistake(lambda a, b: a @ b.T,
                "you return dot products: divide by both rows' lengths (normalise every row to "
                "unit length first)."),
        Mistake(lambda a, b: F.normalize(a, dim=1) @ b.T,
                "only the queries are normalised; normalise the database rows too."),
        Mistake(lambda a, b: a @ F.normalize(b, dim=1).T,
                "only the database rows are normalised; normalise the queries too."),
        Mistake(lambda a, b: F.normalize(a, dim=0) @ F.normalize(b, dim=0).T,
                "you normalised the columns (dim=0); each row (one image's features) must "
                "have unit length: dim=1."),
        Mistake(lambda a, b: 1 - _cosine_reference(a, b),
                "you return the cosine distance 1 - cos; the exercise asks for the similarity."),
    ])


def _precision_reference(neighbour_labels: torch.Tensor, query_labels: torch.Tensor, k: int) -> float:
    return float((neighbour_labels[:, :k] == query_labels[:, None]).double().mean())


@_exercise("7.2", "precision@k")
def precision_at_k(fn: Callable) -> None:
    """`fn(neighbour_labels (Q, K) nearest first, query_labels (Q,), k)`: mean precision@k, a float."""
    g = _gen(14)
    nl = torch.randint(0, 3, (20, 10), generator=g)
    ql = torch.randint(0, 3, (20,), generator=g)
    cases = [Case(f"20 queries with 10 neighbours, k = {k}",
                  {"neighbour_labels": nl, "query_labels": ql, "k": k}) for k in (1, 4, 10)]
    cases.append(Case("a single query, k = 5", {"neighbour_labels": nl[:1], "query_labels": ql[:1],
                                                "k": 5}))

    def hit(nl, ql, k):
        return float((nl[:, :k] == ql[:, None]).any(dim=1).double().mean())

    _compare("precision_at_k", fn, _precision_reference, cases, [
        Mistake(lambda nl, ql, k: float((nl[:, -k:] == ql[:, None]).double().mean()),
                "you take the last k neighbours; the list is nearest first, so take the first "
                "k: neighbour_labels[:, :k]."),
        Mistake(hit,
                "you count a query as a success when any of its k neighbours matches (the hit "
                "rate). Precision@k is the fraction of the k neighbours that match."),
        Mistake(lambda nl, ql, k: float((nl[:, :k] == ql[:, None]).double().sum(dim=1).mean()
                                        / nl.shape[1]),
                "you divide by all the neighbours given (K), not by k."),
        Mistake(lambda nl, ql, k: float((nl[:, :k + 1] == ql[:, None]).double().mean()),
                "you look at k + 1 neighbours; neighbour_labels[:, :k] are the first k."),
    ], atol=1e-9)


@_exercise("7.4", "the area under the ROC curve")
def auroc(fn: Callable) -> None:
    """`fn(scores (N,), labels (N,) of 0/1)`: AUROC, ties counted as one half, a float."""
    from .metrics import auroc as reference
    g = _gen(15)
    labels = (torch.arange(60) % 3 == 0).long()
    scores = torch.randn(60, generator=g) + 0.8 * labels
    tied = torch.randint(0, 5, (60,), generator=g).float() + labels
    cases = [Case("60 scores, 20 of them anomalies", {"scores": scores, "labels": labels}),
             Case("scores with many ties (whole numbers 0 to 5)", {"scores": tied, "labels": labels}),
             Case("one anomaly and one normal image", {"scores": torch.tensor([0.3, 0.9]),
                                                       "labels": torch.tensor([1, 0])}),
             Case("double precision", {"scores": scores.double(), "labels": labels})]

    def pairs(scores, labels, tie):
        p, n = scores[labels == 1], scores[labels == 0]
        diff = p[:, None] - n[None, :]
        return float(((diff > 0).double() + tie * (diff == 0).double()).mean())

    _compare("auroc", fn, reference, cases, [
        Mistake(lambda s, y: 1 - reference(s, y),
                "your AUROC is 1 minus the expected one: the ranking is reversed. Anomalies "
                "(label 1) should get the higher scores; count the pairs where the anomaly "
                "scores higher."),
        Mistake(lambda s, y: pairs(s, y, 0.0),
                "tied scores count as 0; a tie between an anomaly and a normal image counts "
                "one half."),
        Mistake(lambda s, y: pairs(s, y, 1.0),
                "tied scores count as a full success; a tie counts one half."),
    ], atol=1e-9)


def _nll_reference(z: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    return -torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(z)


@_exercise("7.5", "a Gaussian density score")
def gaussian_nll(fn: Callable) -> None:
    """`fn(z (N, K), mean (K,), cov (K, K))`: the negative log-density of each code, `(N,)`."""
    g = _gen(16)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.5 * torch.eye(3, dtype=torch.float64)
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    z = mean + torch.randn(16, 3, generator=g, dtype=torch.float64) * 2
    cases = [Case("16 codes of 3 units, a correlated Gaussian",
                  {"z": z.float(), "mean": mean.float(), "cov": cov.float()}),
             Case("a single code", {"z": z[:1].float(), "mean": mean.float(), "cov": cov.float()}),
             Case("double precision", {"z": z, "mean": mean, "cov": cov})]

    def parts(z, mean, cov, quad=True, logdet=True, const=True, inverse=True, centre=True):
        d = z - mean if centre else z
        m = torch.linalg.inv(cov) if inverse else cov
        value = 0.5 * ((d @ m) * d).sum(dim=1) if quad else torch.zeros(len(z))
        if logdet:
            value = value + 0.5 * torch.logdet(cov)
        if const:
            value = value + 0.5 * z.shape[1] * math.log(2 * math.pi)
        return value

    _compare("gaussian_nll", fn, _nll_reference, cases, [
        Mistake(lambda z, m, c: parts(z, m, c, logdet=False),
                "the 0.5 log det(cov) term is missing: a wide Gaussian spreads its density "
                "thinner, and the determinant says by how much."),
        Mistake(lambda z, m, c: parts(z, m, c, const=False),
                "the constant 0.5 K log(2 pi) is missing (the normalisation of the density)."),
        Mistake(lambda z, m, c: parts(z, m, c, inverse=False),
                "you multiply by cov itself; the quadratic form uses its inverse (solve with "
                "torch.linalg.solve(cov, (z - mean).T))."),
        Mistake(lambda z, m, c: parts(z, m, c, centre=False),
                "the codes are not centred: use z - mean in the quadratic form."),
    ], rtol=1e-4, atol=1e-4)


@_exercise("7.7", "uniform quantisation of codes")
def quantize(fn: Callable) -> None:
    """`fn(z (N, K), bits, lo (K,), hi (K,))`: integers in 0..2**bits - 1 (int64), rounded, clipped."""
    from .codec import quantize as reference
    g = _gen(17)
    lo, hi = torch.tensor([-1.0, 0.0, 2.0, -5.0]), torch.tensor([1.0, 4.0, 3.0, 5.0])
    z = lo + (hi - lo) * torch.rand(16, 4, generator=g)
    wide = lo + (hi - lo) * (1.6 * torch.rand(16, 4, generator=g) - 0.3)
    cases = [Case("16 codes of 4 units, 8 bits", {"z": z, "bits": 8, "lo": lo, "hi": hi}),
             Case("2 bits", {"z": z, "bits": 2, "lo": lo, "hi": hi}),
             Case("codes outside [lo, hi], 4 bits", {"z": wide, "bits": 4, "lo": lo, "hi": hi}),
             Case("a single code, 8 bits", {"z": z[:1], "bits": 8, "lo": lo, "hi": hi}),
             Case("double precision, 8 bits", {"z": z.double(), "bits": 8, "lo": lo.double(),
                                               "hi": hi.double()})]

    def steps(z, bits, lo, hi, levels=None, rounding=torch.round, clip=True, per_unit=True):
        levels = 2**bits - 1 if levels is None else levels
        if not per_unit:
            lo, hi = lo.min().expand_as(lo), hi.max().expand_as(hi)
        zc = z.clamp(lo, hi) if clip else z
        return rounding((zc - lo) / (hi - lo) * levels).long()

    _compare("quantize", fn, reference, cases, [
        Mistake(lambda z, b, lo, hi: steps(z, b, lo, hi, rounding=torch.floor),
                "you truncate (floor) instead of rounding: a value just below a level belongs "
                "to that level. Use torch.round."),
        Mistake(lambda z, b, lo, hi: steps(z, b, lo, hi, clip=False),
                "codes outside [lo, hi] give levels outside 0..2**bits - 1: clip z to [lo, hi] "
                "first (z.clamp(lo, hi))."),
        Mistake(lambda z, b, lo, hi: steps(z, b, lo, hi, levels=2**b),
                "you scale to 2**bits; the top level is 2**bits - 1 (bits bits hold 2**bits "
                "levels, 0 to 2**bits - 1)."),
        Mistake(lambda z, b, lo, hi: steps(z, b, lo, hi, per_unit=False),
                "you use one range for every unit; each unit (column j) has its own range "
                "lo[j]..hi[j]."),
    ], atol=0.0, rtol=0.0)


@_exercise("7.8", "the peak signal-to-noise ratio")
def psnr(fn: Callable) -> None:
    """`fn(x_hat, x)`: `10 log10(1 / mse)` per image in dB, `(N,)`, pixel range [0, 1]."""
    x = _images(8, 18)
    x_hat = (x + 0.1 * torch.randn(8, 1, 8, 8, generator=_gen(19))).clamp(0, 1)
    cases = [Case("8 noisy images", {"x_hat": x_hat, "x": x}, _image_sizes(x)),
             Case("a batch of one image", {"x_hat": x_hat[:1], "x": x[:1]}),
             Case("double precision", {"x_hat": x_hat.double(), "x": x.double()}, _image_sizes(x))]

    def reference(x_hat, x):
        return 10 * torch.log10(1 / (x_hat - x).square().flatten(1).mean(dim=1))

    _compare("psnr", fn, reference, cases, [
        Mistake(lambda x_hat, x: 10 * torch.log(1 / (x_hat - x).square().flatten(1).mean(dim=1)),
                "you used the natural log; decibels use log10."),
        Mistake(lambda x_hat, x: 20 * torch.log10(1 / (x_hat - x).square().flatten(1).mean(dim=1)),
                "20 log10 goes with the root of the MSE (an amplitude); with the MSE itself it "
                "is 10 log10."),
        Mistake(lambda x_hat, x: 10 * torch.log10((x_hat - x).square().flatten(1).mean(dim=1)),
                "sign error: PSNR is 10 log10(1 / MSE), high for good reconstructions; you "
                "computed 10 log10(MSE)."),
        Mistake(lambda x_hat, x: 10 * torch.log10(1 / (x_hat - x).square().flatten(1).sum(dim=1)),
                "you sum the squared errors over the pixels; the MSE averages them."),
    ], atol=1e-4)


def _scored_images(n: int, seed: int, levels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_hat, x) of n 8x8 images whose squared errors differ from image to image.

    With `levels`, every image's error is one of that many values (exact ties)."""
    x = _images(n, seed)
    g = _gen(seed + 1)
    if levels is None:
        noise = torch.randn(n, 1, 8, 8, generator=g) * torch.rand(n, 1, 1, 1, generator=g)
        return x + 0.3 * noise, x
    x = (x * 128).round() / 256  # multiples of 1/256 in [0, 0.5]: x + 0.5 is exact
    wrong = torch.randint(0, levels, (n,), generator=g)  # how many pixels are off by exactly 0.5
    x_hat = x.clone().view(n, -1)
    x_hat[torch.arange(64)[None, :] < wrong[:, None]] += 0.5
    return x_hat.view_as(x), x


@_exercise("7.10", "a threshold at a target false-positive rate")
def anomaly_threshold(fn: Callable) -> None:
    """`fn(x_hat, x, fpr) -> float`: the per-image mean squared error of normal validation
    images and the smallest threshold that flags (score > threshold) at most a share `fpr`."""
    from .metrics import threshold_at_fpr

    name = "anomaly_threshold"
    _require_function(fn, name)
    prefix = _prefix(name, fn)
    cases = []
    for label, n, fpr, levels in (("40 normal images, fpr = 0.1", 40, 0.1, None),
                                  ("50 normal images, fpr = 0.07 (3.5 of them)", 50, 0.07, None),
                                  ("30 images whose errors take only 4 values (ties), fpr = 0.2",
                                   30, 0.2, 4),
                                  ("20 normal images, fpr = 0 (flag none of them)", 20, 0.0, None),
                                  ("a single image, fpr = 0.5", 1, 0.5, None)):
        x_hat, x = _scored_images(n, 50 + n, levels)
        cases.append(Case(label, {"x_hat": x_hat, "x": x, "fpr": fpr}))
    x_hat, x = _scored_images(40, 90)
    cases.append(Case("40 images in double precision, fpr = 0.1",
                      {"x_hat": x_hat.double(), "x": x.double(), "fpr": 0.1}))

    def scores(x_hat, x, reduce="mean", square=True):
        d = (x_hat - x).double().flatten(1)
        d = d.square() if square else d.abs()
        return d.mean(dim=1) if reduce == "mean" else d.sum(dim=1)

    def kth(s, fpr, shift=0, k_of=None):  # ascending sort, index N - k - 1 + shift
        k = math.floor(fpr * len(s) + 1e-9) if k_of is None else k_of(fpr * len(s))
        return float(s.sort().values[len(s) - k - 1 + shift])

    mistakes = [
        (lambda x_hat, x, fpr: threshold_at_fpr(scores(x_hat, x, "sum"), fpr),
         "your threshold is on the sum of each image's squared errors over its {d} pixels; the "
         "anomaly score is their mean, one number per image, as metrics.per_image_error and the "
         "chapter's detectors compute it (.flatten(1).mean(dim=1)). Both rank the images alike, "
         "but a threshold only works on the scale of the scores it is compared with."),
        (lambda x_hat, x, fpr: threshold_at_fpr(scores(x_hat, x, square=False), fpr),
         "you score images by their absolute errors; the score is the mean *squared* error."),
        (lambda x_hat, x, fpr: kth(scores(x_hat, x), fpr, shift=1),
         "you return the k-th largest score (k = floor(fpr * N)). An image is flagged when its "
         "score is above the threshold (>), so that threshold flags only k - 1 images where k "
         "are allowed; the smallest threshold that flags at most k is the (k + 1)-th largest, "
         "s[N - k - 1] of the scores sorted in ascending order."),
        (lambda x_hat, x, fpr: float(torch.quantile(scores(x_hat, x), 1 - fpr)),
         "your threshold lies between two scores: torch.quantile interpolates linearly between "
         "them. The threshold is one of the scores, the (k + 1)-th largest with k = floor(fpr * N): "
         "sort the scores and index them."),
        *[(lambda x_hat, x, fpr, k_of=k_of: kth(scores(x_hat, x), fpr, k_of=k_of),
           "you round k = fpr * N up (or to the nearest whole number): that flags more than a "
           "share fpr of the normal images. At most k = floor(fpr * N) images "
           "(metrics.allowed_above(N, fpr)) may lie above the threshold.") for k_of in (math.ceil, round)],
        (lambda x_hat, x, fpr: float(scores(x_hat, x)[len(x) - math.floor(fpr * len(x) + 1e-9) - 1]),
         "you index the scores in the order of the images: sort them first "
         "(scores.sort().values), then the (k + 1)-th largest is at index N - k - 1."),
    ]
    for case in cases:
        x_hat, x, fpr = case.args.values()
        s = scores(x_hat, x)
        want = threshold_at_fpr(s, fpr)
        out = _call(fn, name, case)
        if isinstance(out, torch.Tensor) and out.numel() != 1:
            raise _fail(name, fn, f"returned a tensor of shape {tuple(out.shape)} on {case.label}; "
                                  f"return one number, the threshold, as a Python float (.item()).")
        got = float(_as_tensor(out, want, prefix, case))
        if math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-9):
            continue
        if not math.isfinite(got):
            raise _fail(name, fn, f"returned {got} on {case.label}, where the reference is "
                                  f"{want:.6g}.")
        for mistake, message in mistakes:
            try:
                alt = mistake(*[_copy(v) for v in case.args.values()])
            except Exception:  # the mistake does not apply to this input
                continue
            if math.isclose(got, alt, rel_tol=1e-5, abs_tol=1e-9):
                raise _fail(name, fn, f"on {case.label}: " + message.format(d=x[0].numel()))
        n, k = len(s), math.floor(fpr * len(s) + 1e-9)
        flagged = int((s > got).sum())
        said = (f"on {case.label}: your threshold {got:.6g} flags {flagged} of the {n} normal "
                f"images (score > threshold), the reference {want:.6g} flags "
                f"{int((s > want).sum())}, at most k = floor(fpr * N) = {k}.")
        if flagged >= n - k - 1 > k:
            raise _fail(name, fn, said + " Yours flags about a share 1 - fpr of them: you took "
                                         "the quantile at fpr, or flag with < instead of >. "
                                         "Anomalies score high; a share fpr of the normal "
                                         "scores must lie above the threshold, so take the "
                                         "(k + 1)-th largest.")
        if flagged > k:
            raise _fail(name, fn, said + " Too many: raise the threshold.")
        raise _fail(name, fn, said + " A lower threshold would still flag at most k: take the "
                                     "smallest such threshold, the (k + 1)-th largest score.")
    labels = "; ".join(c.label for c in cases)
    _say(f"✓ {prefix} matches the reference on {len(cases)} inputs ({labels}): the mean squared "
         f"error per image, and the smallest threshold that flags at most a share fpr of them.")


__all__ = ["EXERCISES", "Exercise", "ExerciseFailed", *EXERCISES]
