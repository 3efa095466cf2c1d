"""Figures and tables: image grids, originals over reconstructions, loss curves, sweeps.

Every function draws on matplotlib axes and returns the figure; nothing
changes global styles unless `use_book_style()` is called. Introduced in
chapter 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypeVar

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from . import metrics

T = TypeVar("T")


#: Training images (train + validation splits) of the complete MNIST, the published run's data.
PUBLISHED_TRAIN_IMAGES = 60000

#: The widest figure, in inches. The website's text column is 672 px wide (at a
#: 1280 px window) and figures render at 100 dpi, so a figure up to 8.4 inches is
#: shown at 80% of its size or more and the book's smallest text, 9 pt (12.5 px
#: at full size), at 10 px or more. tests/site checks every image of the site.
MAX_WIDTH = 8.0


def run_note(ds, *, quick: bool | None = None, seed: int | None = None):
    """What run this page shows, as Markdown for the top of a chapter.

    The website shows the full run on the complete MNIST; every other run
    (quick mode, the digits, the MNIST stand-in) says in bold that its
    numbers are its own, so a quick build is never mistaken for the
    published one. `ds` is the chapter's `data.Dataset`. Introduced in
    chapter 1.
    """
    from . import i18n, runtime

    quick = runtime.is_quick() if quick is None else quick
    seed = runtime.get_seed() if seed is None else seed
    images = len(ds.x_train) + len(ds.x_val)
    mode = i18n.say("quick") if quick else i18n.say("full")
    run = i18n.say("run in {mode} mode on {data} ({images} training images, {val} of them held "
                   "out for validation, and {test} test images), seed {seed}",
                   mode=mode, data=ds.name, images=f"{images:,}", val=f"{len(ds.x_val):,}",
                   test=f"{len(ds.x_test):,}", seed=seed)
    published = not quick and ds.name == "mnist" and images == PUBLISHED_TRAIN_IMAGES
    if published:
        note = i18n.say("*This page shows a {run}: the run the website publishes.*", run=run)
    else:
        note = i18n.say("> **This page shows a {run}**, not the book's published run (full mode "
                        "on the complete MNIST). Its numbers and the words chosen from them are "
                        "this run's own; the check of every claim ran on them (timings are "
                        "reported, not checked).", run=run)
    return i18n.MarkdownPhrase(note)


def use_book_style() -> None:
    """The book's figure style (readable fonts, light grid). Call once per notebook."""
    plt.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 150, "font.size": 11, "axes.titlesize": 12,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False, "legend.frameon": False,
    })


def _images(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().float().cpu()
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 3:
        raise ValueError(f"expected images of shape (N, 1, H, W) or (N, H, W), got {tuple(x.shape)}.")
    return x


def image_rows(rows: Sequence[torch.Tensor], labels: Sequence[str] | None = None,
               titles: Sequence[str] | None = None, scale: float = 1.0,
               signed: bool = False) -> plt.Figure:
    """Draw several rows of images (each `(N, 1, H, W)` in [0, 1]) one above another.

    `labels` name the rows (left margin) and `titles` the columns. Used for
    originals over reconstructions. With `signed=True` each image is a
    direction in pixel space (any sign, e.g. a principal axis or a decoder
    column): it is scaled by its own largest absolute value and drawn red
    (positive) / blue (negative) on white. Introduced in chapter 1
    (`signed` in chapter 2).
    """
    rows = [_images(r) for r in rows]
    if signed:
        rows = [r / r.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1) for r in rows]
    cmap, vmin = ("RdBu_r", -1.0) if signed else ("gray", 0.0)
    n = max(len(r) for r in rows)
    cell = min(scale * 0.9, (MAX_WIDTH - 0.8) / n)  # inches per image, at most MAX_WIDTH in all
    fig, axes = plt.subplots(len(rows), n, figsize=(cell * n + 0.8, cell * 0.95 / 0.9 * len(rows)),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(row):
                ax.imshow(row[j].numpy(), cmap=cmap, vmin=vmin, vmax=1.0)
            if i == 0 and titles is not None and j < len(titles):
                ax.set_title(titles[j], fontsize=9)
        if labels is not None:
            axes[i][0].set_ylabel(labels[i], rotation=0, ha="right", va="center", fontsize=10)
    fig.tight_layout(pad=0.3)
    return fig


def image_grid(x: torch.Tensor, ncols: int = 10, title: str | None = None,
               scale: float = 1.0) -> plt.Figure:
    """Draw images `x: (N, 1, H, W)` in [0, 1] on a grid of `ncols` columns."""
    x = _images(x)
    rows = [x[i:i + ncols] for i in range(0, len(x), ncols)]
    fig = image_rows(rows, scale=scale)
    if title:
        fig.suptitle(title)
        fig.tight_layout(pad=0.3)
    return fig


def reconstructions(x: torch.Tensor, x_hats: dict[str, torch.Tensor] | torch.Tensor,
                    titles: Sequence[str] | None = None) -> plt.Figure:
    """Originals `x: (N, 1, H, W)` in the top row, each model's `x_hat` below.

    `x_hats` is one tensor or `{row label: x_hat}`. Introduced in chapter 1.
    """
    if isinstance(x_hats, torch.Tensor):
        x_hats = {"reconstruction": x_hats}
    return image_rows([x, *x_hats.values()], labels=["original", *x_hats.keys()], titles=titles)


def loss_curves(histories: dict[str, dict], part: str = "loss", ylabel: str | None = None,
                logy: bool = False) -> plt.Figure:
    """Training (solid) and validation (dashed) curves of `part` per epoch, one colour per run."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (name, hist) in enumerate(histories.items()):
        color = f"C{i}"
        ax.plot(hist["epoch"], hist["train"][part], color=color, label=f"{name} (train)")
        if hist["val"].get(part):
            ax.plot(hist["epoch"], hist["val"][part], color=color, ls="--", label=f"{name} (validation)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or part)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def sweep(x: Sequence[float], series: dict[str, Sequence[float]], xlabel: str, ylabel: str,
          logx: bool = False, logy: bool = False, title: str | None = None) -> plt.Figure:
    """Line plot of several named series against a swept setting `x` (markers at the points)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, ys in series.items():
        ax.plot(x, ys, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(x), [str(v) for v in x])
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def tracked(histories: dict[str, dict], panels: dict[str, str], logy: Sequence[str] = ()) -> plt.Figure:
    """Values recorded by `fit(..., track=...)` per epoch: one panel per tracked name.

    `histories` maps a run's label to its history; `panels` maps a tracked
    name to its axis label (panels side by side, one line per run); names
    in `logy` get a logarithmic axis. Introduced in chapter 2.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(min(4.2 * len(panels), MAX_WIDTH), 3.4),
                             squeeze=False)
    for ax, (key, label) in zip(axes[0], panels.items()):
        for name, hist in histories.items():
            if key not in hist.get("track", {}):
                raise KeyError(f"run {name!r} tracked {sorted(hist.get('track', {}))}, not {key!r}.")
            ax.plot(hist["epoch"], hist["track"][key], label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if key in logy:
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=9)
    fig.tight_layout()
    return fig


def tradeoff(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
             points: dict[str, tuple[float, float]] | None = None, logx: bool = False,
             logy: bool = False, ax: plt.Axes | None = None, arrows: bool = True,
             ymax: float | None = None) -> plt.Figure:
    """Trade-off curves: each series `{label: (xs, ys)}` is one run per point, joined in order.

    Used for a penalty weight swept from weak to strong, with one measure on
    each axis (say reconstruction error against sparsity). `points` are
    single reference runs `{label: (x, y)}`, drawn as stars. Draws on `ax`
    if given; `arrows=False` leaves out the arrow on each curve's last segment.
    `ymax` caps the y-axis so that a few far-off points do not flatten the
    rest: a point of a series above it is drawn as a triangle on the top
    edge, in its series' colour, labelled with its value. Introduced in
    chapter 4 (`ymax` in chapter 7).
    """
    fig, ax = (plt.subplots(figsize=(6.4, 3.8)) if ax is None else (ax.figure, ax))
    for label, (xs, ys) in series.items():
        if len(xs) != len(ys):
            raise ValueError(f"series {label!r} has {len(xs)} x values but {len(ys)} y values.")
        line = ax.plot(xs, ys, marker="o", label=label)[0]
        above = [(x, y) for x, y in zip(xs, ys) if ymax is not None and y > ymax]
        for x, y in above:  # off the top: a triangle on the edge, with its value
            ax.plot([x], [ymax], marker="^", ms=9, ls="none", color=line.get_color(), clip_on=False)
            ax.annotate(f"{y:.3g}", (x, ymax), xytext=(6, -2), textcoords="offset points",
                        ha="left", va="top", fontsize=9, color=line.get_color())
        if arrows and len(xs) > 1:  # an arrow on the last segment shows the direction of a stronger penalty
            ax.annotate("", xy=(xs[-1], ys[-1]), xytext=(xs[-2], ys[-2]),
                        arrowprops={"arrowstyle": "->", "color": line.get_color(), "lw": 1.5})
    for i, (label, (x, y)) in enumerate((points or {}).items()):
        ax.plot([x], [y], marker="*", ms=14, ls="none", color=f"C{len(series) + i}", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ymax is not None and ax.get_ylim()[1] > ymax:
        ax.set_ylim(top=ymax)
    for on, axis, set_scale in ((logx, ax.xaxis, ax.set_xscale), (logy, ax.yaxis, ax.set_yscale)):
        if on:  # ticks at 1, 2, 5 times powers of ten, written as plain numbers
            set_scale("log")
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def activation_profiles(codes: dict[str, torch.Tensor], threshold: float = 0.05) -> plt.Figure:
    """How each model's code units fire: two panels for codes `{label: h (N, K)}` in [0, 1].

    Left: histogram of all activations (log counts), the sparsity threshold
    dotted. Right: each unit's lifetime activity (fraction of inputs on
    which it is >= `threshold`), units sorted from most to least active; a
    flat line at 1 is a code where every unit is always on, 0 marks dead
    units. Introduced in chapter 4.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(MAX_WIDTH, 3.4))
    bins = torch.linspace(0, 1, 41).tolist()
    for i, (label, h) in enumerate(codes.items()):
        h = h.detach().float().cpu()
        left.hist(h.flatten().numpy(), bins=bins, histtype="step", lw=1.6, color=f"C{i}", label=label)
        life = metrics.sparsity_stats(h, threshold)["lifetime"].sort(descending=True).values
        right.plot(range(1, len(life) + 1), life.numpy(), color=f"C{i}", label=label)
    left.set_yscale("log")
    left.axvline(threshold, color="grey", ls=":", lw=1)
    left.set_xlabel("activation")
    left.set_ylabel("count (all test codes)")
    right.set_xlabel("unit (sorted)")
    right.set_ylabel(f"fraction of inputs with h ≥ {threshold:g}")
    right.set_ylim(-0.03, 1.03)
    left.legend(fontsize=9)
    fig.tight_layout()
    return fig


def spectra(singular_values: dict[str, torch.Tensor], first: int | None = None) -> plt.Figure:
    """Median singular value of index i (descending) across examples, one line per model.

    `singular_values: {label: (N, r)}` as from `metrics.jacobian_singular_values`;
    a band shows the 10th-90th percentile over the N examples. `first`
    limits the plot to the leading values. The y-axis stops 8 decades below
    the largest value: float32 round-off (about 1e-7 relative) makes
    anything smaller noise, and a band reaching 1e-39 would flatten every
    curve. Introduced in chapter 5.
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    lowest, highest = math.inf, 0.0
    for i, (label, sv) in enumerate(singular_values.items()):
        sv = sv.detach().double().cpu()[:, :first]
        q = torch.quantile(sv, torch.tensor([0.1, 0.5, 0.9], dtype=sv.dtype), dim=0)
        idx = range(1, sv.shape[1] + 1)
        ax.plot(idx, q[1].numpy(), color=f"C{i}", label=label)
        ax.fill_between(idx, q[0].numpy(), q[2].numpy(), color=f"C{i}", alpha=0.2, lw=0)
        positive = q[:2][q[:2] > 0]  # the band's lower edge and the median
        lowest = min(lowest, float(positive.min()) if len(positive) else math.inf)
        highest = max(highest, float(q[2].max()))
    ax.set_yscale("log")
    if highest > 0 and math.isfinite(lowest):
        ax.set_ylim(bottom=max(lowest / 2, highest * 1e-8))
    ax.set_xlabel("index i of the singular value (largest first)")
    ax.set_ylabel("singular value of dh/dx")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def bound(x: float, *, decimals: int | None = None, significant: int | None = None,
          up: bool = True) -> float:
    """`x` rounded for a sentence that states a bound: up for "at most", down for "at least".

    Give `decimals` (digits after the point) or `significant` (significant digits).
    Rounding is done in exact decimal arithmetic on the float's value, so the
    printed number (format it with the same number of digits) is never on the
    wrong side of `x`: `bound(0.2351, decimals=2)` is 0.24, `bound(0.9359,
    decimals=1, up=False)` is 0.9 and `bound(2.41e-7, significant=2)` is 2.5e-07.
    The float's exact value is what is rounded, so a number that only looks
    round moves a step: `bound(0.1, decimals=1)` is 0.2 (0.1 is stored as
    0.1000000000000000055...), safe but one digit loose. Introduced in
    chapter 2.
    """
    from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

    if (decimals is None) == (significant is None):
        raise ValueError("bound: give exactly one of decimals= or significant=, "
                         "e.g. bound(x, decimals=2) or bound(x, significant=1).")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"bound: x is {x}; a bound needs a finite number. "
                         "Check the computation that produced it.")
    if significant is not None:
        if significant < 1:
            raise ValueError(f"bound: significant={significant}; give 1 or more digits.")
        if x == 0:
            return 0.0
        decimals = significant - 1 - math.floor(math.log10(abs(x)))
    step = Decimal(1).scaleb(-decimals)
    with localcontext() as context:
        context.prec = 400  # room for any float at any number of decimals
        rounded = Decimal(x).quantize(step, rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return float(rounded) + 0.0  # + 0.0: never -0.0, which would print as "-0.00"


def printed_difference(a: float, b: float, decimals: int) -> float:
    """`a - b` as a reader computes it from `a` and `b` printed with `decimals` decimals.

    A sentence beside a table that names the difference of two printed
    numbers, or its sign, must agree with what the reader subtracts, and each
    printed value is off by up to half a step: `printed_difference(25.26,
    25.14, 1)` is 0.2 (25.3 - 25.1) where `a - b`, 0.12, prints as 0.1. The
    result is itself rounded to `decimals`, so it prints exactly and compares
    exactly (`== 0` means "level as printed"). Introduced in chapter 3.
    """
    if decimals < 0:
        raise ValueError(f"printed_difference: decimals={decimals}; give 0 or more.")
    return round(round(float(a), decimals) - round(float(b), decimals), decimals) + 0.0


def printed_ratio(a: float, b: float, decimals: int, decimals_b: int | None = None) -> float:
    """`a / b` as a reader computes it from `a` and `b` printed with `decimals` decimals.

    A sentence that says "5.4 times lower" or "0.5% below" beside a table
    must give what the reader gets by dividing the printed numbers:
    `printed_ratio(0.06748, 0.01262, 4)` is 0.0675 / 0.0126 = 5.357..., which
    prints as 5.4, where `a / b` (5.347...) prints as 5.3. When `b` is
    printed with other decimals than `a` (a difference of 1.7 nats against a
    standard error of 0.07), give them as `decimals_b`. Raises `ValueError`
    when `b` prints as zero: print it with more decimals, or compare
    differences instead. Introduced in chapter 1.
    """
    decimals_b = decimals if decimals_b is None else decimals_b
    if decimals < 0 or decimals_b < 0:
        raise ValueError(f"printed_ratio: decimals={decimals}, decimals_b={decimals_b}; "
                         "give 0 or more.")
    shown_a, shown_b = round(float(a), decimals), round(float(b), decimals_b)
    if shown_b == 0 or not math.isfinite(shown_a) or not math.isfinite(shown_b):
        raise ValueError(f"printed_ratio: {b!r} prints as {shown_b} with {decimals_b} decimals, "
                         f"so the printed numbers give no ratio (a = {a!r}); print them with "
                         "more decimals, or compare differences instead.")
    return shown_a / shown_b


def by_sign(value: float, positive: T, zero: T, negative: T) -> T:
    """`positive`, `zero` or `negative` by the sign of `value`: the word a sentence needs.

    A glued verdict ("higher than" / "level with" / "lower than") must follow
    the number the reader sees, so pass a `printed_difference`: `by_sign(
    printed_difference(a, b, 2), "higher than", "level with", "lower than")`.
    Raises `ValueError` on NaN, which has no sign and would otherwise pick a
    branch silently. Introduced in chapter 1.
    """
    value = float(value)
    if math.isnan(value):
        raise ValueError("by_sign: the value is NaN, so no verdict can be worded. "
                         "Check the numbers compared (a diverged model, an empty set).")
    return positive if value > 0 else zero if value == 0 else negative


def percent_apart(rel: float, decimals: int = 1) -> "i18n.Phrase":
    """'3.1% above', 'level with' or '2.2% below': a relative difference `rel` (0.031 is
    3.1% above) in words, decided on the percentage as printed with `decimals` decimals.

    A difference that prints as 0.0% reads "level with", never "0.0% above". Pass a
    `rel` computed from printed values (`printed_ratio(a, b, 4) - 1`) when the sentence
    stands beside a table. Raises `ValueError` on NaN. Introduced in chapter 1.
    """
    from . import i18n

    rel = float(rel)
    if math.isnan(rel) or decimals < 0:
        raise ValueError(f"percent_apart: got rel={rel!r}, decimals={decimals!r}; give a "
                         "number and 0 or more decimals.")
    pct = f"{abs(rel):.{decimals}%}"
    if pct == f"{0:.{decimals}%}":  # no "0.0% above"
        return i18n.say("level with")
    return i18n.say("{pct} above", pct=pct) if rel > 0 else i18n.say("{pct} below", pct=pct)


def listed(items: Iterable[object], conjunction: str = "and") -> "i18n.Phrase":
    """Items joined as in a sentence: "2", "2 and 4", "2, 4 and 8", in the page's language.

    The result is the English string, and a phrase (`aelib.i18n`) that the Chinese and
    Russian editions word in their own language. Raises `ValueError` on no items: a sentence
    listing nothing must be worded differently. Introduced in chapter 1.
    """
    from . import i18n

    return i18n.listed(items, conjunction)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], floatfmt: str = ".4f"):
    """A table rendered as Markdown in Jupyter and on the website.

    Floats are formatted with `floatfmt`, everything else with `str`.
    Returns an `IPython.display.Markdown` object; display it or leave it as
    the last expression of a cell. Introduced in chapter 1.
    """
    from IPython.display import Markdown

    def cell(v: object) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"markdown_table: row {i} has {len(row)} cells but there are "
                             f"{len(headers)} headers; give every row one value per header.")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def history_table(history: dict, rows: int = 10, floatfmt: str = ".4f"):
    """Training and validation loss at `rows` evenly spaced epochs, the first and the last included."""
    epochs = history["epoch"]
    if not epochs:
        raise ValueError("the history is empty: train for at least one epoch first.")
    n = len(epochs)
    m = min(rows, n)
    picks = sorted({round(i * (n - 1) / max(1, m - 1)) for i in range(m)})  # first and last included
    has_val = bool(history["val"].get("loss"))
    headers = ["epoch", "train loss"] + (["validation loss"] if has_val else [])
    body = [[epochs[i], history["train"]["loss"][i]] + ([history["val"]["loss"][i]] if has_val else [])
            for i in picks]
    return markdown_table(headers, body, floatfmt)


def latent_scatter(z: torch.Tensor, labels: torch.Tensor, title: str | None = None,
                   ax: plt.Axes | None = None) -> plt.Figure:
    """2-d codes `z: (N, 2)` as points coloured by their digit `labels: (N,)`.

    Introduced in chapter 6.
    """
    z, labels = z.detach().float().cpu(), labels.cpu()
    if z.dim() != 2 or z.shape[1] != 2 or len(labels) != len(z):
        raise ValueError(f"latent_scatter needs 2-d codes (N, 2) and N labels, got "
                         f"{tuple(z.shape)} and {tuple(labels.shape)}.")
    fig, ax = (plt.subplots(figsize=(5.2, 4.6)) if ax is None else (ax.figure, ax))
    for c in labels.unique().tolist():
        pts = z[labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.7, color=plt.cm.tab10(int(c) % 10), label=str(c))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=9, markerscale=2.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def manifold(images: torch.Tensor, grid: torch.Tensor, ax: plt.Axes | None = None) -> plt.Figure:
    """The decoded images of a square code grid (`models.latent_grid`) as one picture.

    `images: (n * n, 1, H, W)` decoded from `grid: (n * n, 2)`, row-major as
    `latent_grid` makes them; the axes show the code values at the first,
    middle and last images. Introduced in chapter 6.
    """
    x = _images(images)
    n = math.isqrt(len(x))
    if n * n != len(x) or grid.shape != (len(x), 2):
        raise ValueError(f"manifold needs n*n images and an (n*n, 2) grid, got {len(x)} images "
                         f"and a grid of shape {tuple(grid.shape)}.")
    x = torch.nn.functional.pad(x, (1, 1, 1, 1), value=1.0)  # a white line between tiles
    h, w = x.shape[1:]
    mosaic = x.view(n, n, h, w).permute(0, 2, 1, 3).reshape(n * h, n * w)
    fig, ax = (plt.subplots(figsize=(5.2, 5.2)) if ax is None else (ax.figure, ax))
    ax.imshow(mosaic.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.grid(False)
    ticks = [0, n // 2, n - 1]
    ax.set_xticks([w * (i + 0.5) for i in ticks], [f"{float(grid[i, 0]):.2f}" for i in ticks])
    ax.set_yticks([h * (i + 0.5) for i in ticks], [f"{float(grid[i * n, 1]):.2f}" for i in ticks])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    fig.tight_layout()
    return fig


def bars(values: dict[str, torch.Tensor], ylabel: str, threshold: float | None = None,
         logy: bool = False) -> plt.Figure:
    """One panel per entry of `values` (`{title: (K,)}`), its K values as bars, largest first.

    A dotted line marks `threshold` if given. Used for the KL of each latent
    unit at several beta. Introduced in chapter 6.
    """
    fig, axes = plt.subplots(1, len(values), figsize=(min(2.6 * len(values) + 0.6, MAX_WIDTH), 3.0),
                             sharey=True, squeeze=False)
    for ax, (title, v) in zip(axes[0], values.items()):
        v = v.detach().double().cpu().sort(descending=True).values
        ax.bar(range(1, len(v) + 1), v.numpy(), color="C0")
        if threshold is not None:
            ax.axhline(threshold, color="grey", ls=":", lw=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("unit (sorted)")
        if logy:
            ax.set_yscale("log")
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    return fig
