"""Interactive explorers for the notebooks, each with a static fallback.

Every explorer is a thin ipywidgets shell around a plain function that
draws a matplotlib figure. An explorer displays as itself in a live
notebook (JupyterLab, Notebook 7, VS Code) and carries a PNG of the figure
it shows, so a page that cannot run widgets (the website) shows that
picture instead of an empty box. `ipywidgets` is imported only when an
explorer is built. Introduced in chapter 3.
"""

from __future__ import annotations

import base64
import io
from typing import Callable

import torch
from torch import nn

from . import data, metrics, plot

#: Noise level range (min, max, step) offered by the denoising explorer for each kind.
NOISE_SLIDER = {"gaussian": (0.0, 1.0, 0.05), "masking": (0.0, 0.95, 0.05),
                "salt_pepper": (0.0, 0.8, 0.05)}


def denoising_view(models: dict[str, nn.Module], x: torch.Tensor, kind: str, level: float,
                   seed: int = 0) -> dict[str, torch.Tensor]:
    """Corrupt `x: (N, C, H, W)` and denoise it with every model of `models`.

    Returns `{"clean": x, "noisy": ..., label: x_hat for each model}` (all
    on the CPU); the noise comes from a generator seeded with `seed`, so the
    same arguments always give the same images. This is the explorer's
    callback, usable (and tested) without widgets. Introduced in chapter 3.
    """
    generator = torch.Generator().manual_seed(seed)
    noisy = data.add_noise(x.detach().cpu(), kind, level, generator=generator)
    rows = {"clean": x.detach().cpu(), "noisy": noisy}
    for label, model in models.items():
        rows[label] = metrics.reconstruct(model, noisy)
    return rows


def denoising_figure(models: dict[str, nn.Module], x: torch.Tensor, kind: str, level: float,
                     seed: int = 0):
    """The static figure of `denoising_view`: one row per entry, PSNR in the row labels."""
    rows = denoising_view(models, x, kind, level, seed)
    clean = rows["clean"]
    labels = [name if name == "clean" else f"{name}\n{metrics.mean_psnr(img, clean):.1f} dB"
              for name, img in rows.items()]
    fig = plot.image_rows(list(rows.values()), labels=labels)
    fig.suptitle(f"{kind} noise, level {level:g}", fontsize=11)
    fig.tight_layout(pad=0.3)
    return fig


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - ipywidgets is in the [book] extra
        raise ImportError("the explorer needs ipywidgets: pip install -e '.[book]'") from err
    return ipywidgets


def with_static_figure(box, draw: Callable):
    """Give the widget `box` a PNG of `draw()` (a matplotlib figure) beside its widget view.

    Jupyter front ends render the widget view; a page without widgets (the
    website, whose build leaves the widget view out) renders the PNG. The
    figure is drawn when the widget is displayed, so it shows the current
    state. Returns `box`. Introduced in chapter 3.
    """
    import matplotlib.pyplot as plt

    widget_bundle = box._repr_mimebundle_

    def bundle(**kwargs):
        data = widget_bundle(**kwargs)
        data = dict(data[0] if isinstance(data, tuple) else data)
        fig = draw()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")  # as shown inline
        plt.close(fig)
        data["image/png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
        return data

    box._repr_mimebundle_ = bundle
    return box


def denoising_explorer(models: dict[str, nn.Module], x: torch.Tensor, seed: int = 0,
                       kind: str = "gaussian", level: float = 0.3):
    """An ipywidgets explorer: choose noise kind and level, see noisy and denoised images.

    Starts at `kind` and `level`. Needs ipywidgets; returns the widget,
    which shows its current figure where widgets cannot run. Introduced in
    chapter 3.
    """
    widgets = _ipywidgets()
    import matplotlib.pyplot as plt

    if kind not in NOISE_SLIDER:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {sorted(NOISE_SLIDER)}.")
    low, high, step = NOISE_SLIDER[kind]
    if not low <= level <= high:
        raise ValueError(f"level {level} is outside the explorer's range for {kind} noise, "
                         f"[{low}, {high}].")
    kind = widgets.Dropdown(options=list(NOISE_SLIDER), value=kind, description="noise")
    level = widgets.FloatSlider(value=level, min=low, max=high, step=step, description="level")
    out = widgets.Output()

    def redraw(*_):
        low, high, step = NOISE_SLIDER[kind.value]
        level.min, level.max, level.step = low, high, step
        with out:
            out.clear_output(wait=True)
            denoising_figure(models, x, kind.value, level.value, seed)
            plt.show()

    kind.observe(redraw, names="value")
    level.observe(redraw, names="value")
    redraw()
    return with_static_figure(widgets.VBox([widgets.HBox([kind, level]), out]),
                              lambda: denoising_figure(models, x, kind.value, level.value, seed))


def latent_view(model: nn.Module, z1: float, z2: float) -> torch.Tensor:
    """The image a 2-d decoder makes from the code `(z1, z2)`: `(C, H, W)` on the CPU.

    The latent explorer's callback, usable (and tested) without widgets.
    Introduced in chapter 6.
    """
    if getattr(model, "latent_dim", None) != 2:
        raise ValueError(f"latent_view needs a model with a 2-d code, got latent_dim="
                         f"{getattr(model, 'latent_dim', None)!r}.")
    device = next(model.parameters()).device
    with torch.no_grad(), metrics.evaluation_mode(model):
        return model.decode(torch.tensor([[float(z1), float(z2)]], device=device))[0].cpu()


def latent_figure(model: nn.Module, z1: float, z2: float):
    """The static figure of `latent_view`: the decoded image, its code in the title."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2.6, 2.8))
    ax.imshow(latent_view(model, z1, z2)[0].numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"z = ({z1:.2f}, {z2:.2f})", fontsize=11)
    ax.set_axis_off()
    return fig


def latent_explorer(model: nn.Module, limit: float = 3.0, z: tuple[float, float] = (0.0, 0.0)):
    """An ipywidgets explorer: two sliders for the code of a 2-d decoder, the decoded image beside.

    Starts at the code `z`. Needs ipywidgets; returns the widget, which
    shows its current figure where widgets cannot run. Introduced in
    chapter 6.
    """
    widgets = _ipywidgets()
    import matplotlib.pyplot as plt

    latent_view(model, *z)  # a clear error for a model without a 2-d code, before any widget
    sliders = [widgets.FloatSlider(value=float(v), min=-limit, max=limit, step=0.05, description=name)
               for name, v in zip(("z1", "z2"), z)]
    out = widgets.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            latent_figure(model, *(s.value for s in sliders))
            plt.show()

    for s in sliders:
        s.observe(redraw, names="value")
    redraw()
    return with_static_figure(widgets.HBox([widgets.VBox(sliders), out]),
                              lambda: latent_figure(model, *(s.value for s in sliders)))
