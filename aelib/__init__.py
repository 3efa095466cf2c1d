"""aelib: the companion package of the Autoencoders book.

Modules (one job each): `runtime` (device, seed, budget), `data` (datasets
and batching, noise), `losses`, `metrics`, `filters` (classical denoisers),
`pca`, `models`, `train`, `plot`, `codec` (bytes of codes and image files),
`check` (the exercises' auto-checks), `widgets` and `assignments` (imported
on demand).
Importing aelib has no side effects: nothing is seeded, no style is set.
"""

from . import check, codec, data, filters, losses, metrics, models, pca, plot, runtime, train

__version__ = "0.1.0"

__all__ = ["check", "codec", "data", "filters", "losses", "metrics", "models", "pca", "plot", "runtime", "train", "__version__"]
