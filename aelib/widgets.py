"""Interactive explorers for the notebooks, each with a static fallback.

Every explorer is a thin ipywidgets shell around a plain function that
draws a matplotlib figure; the notebooks always show that static figure
(the website cannot run widgets) and put the explorer beside it.
`ipywidgets` is imported only when an explorer is built. Introduced in
chapter 3.
"""

from __future__ import annotations

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


def denoising_explorer(models: dict[str, nn.Module], x: torch.Tensor, seed: int = 0):
    """An ipywidgets explorer: choose noise kind and level, see noisy and denoised images.

    Needs a running Jupyter kernel with ipywidgets; returns the widget.
    Introduced in chapter 3.
    """
    try:
        import ipywidgets as widgets
    except ImportError as err:  # pragma: no cover - ipywidgets is in the [book] extra
        raise ImportError("the explorer needs ipywidgets: pip install -e '.[book]'") from err
    import matplotlib.pyplot as plt

    kind = widgets.Dropdown(options=list(NOISE_SLIDER), value="gaussian", description="noise")
    low, high, step = NOISE_SLIDER["gaussian"]
    level = widgets.FloatSlider(value=0.3, min=low, max=high, step=step, description="level")
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
    return widgets.VBox([widgets.HBox([kind, level]), out])


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


def latent_explorer(model: nn.Module, limit: float = 3.0):
    """An ipywidgets explorer: two sliders for the code of a 2-d decoder, the decoded image beside.

    Needs a running Jupyter kernel with ipywidgets; returns the widget.
    Introduced in chapter 6.
    """
    try:
        import ipywidgets as widgets
    except ImportError as err:  # pragma: no cover - ipywidgets is in the [book] extra
        raise ImportError("the explorer needs ipywidgets: pip install -e '.[book]'") from err
    import matplotlib.pyplot as plt

    sliders = [widgets.FloatSlider(value=0.0, min=-limit, max=limit, step=0.05, description=name)
               for name in ("z1", "z2")]
    out = widgets.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(2.6, 2.6))
            ax.imshow(latent_view(model, *(s.value for s in sliders))[0].numpy(), cmap="gray",
                      vmin=0, vmax=1)
            ax.set_axis_off()
            plt.show()

    for s in sliders:
        s.observe(redraw, names="value")
    redraw()
    return widgets.HBox([widgets.VBox(sliders), out])
