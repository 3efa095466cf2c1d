"""Datasets as in-memory tensors, and index-slice batching.

`load()` returns a `Dataset`: train / validation / test images of shape
`(N, 1, 28, 28)` with values in [0, 1] and integer labels. The validation
split is carved from the training set, stratified by label, with a fixed
random state that does not depend on `AELIB_SEED`, so anything tuned on it is
the same for every seed. Introduced in chapter 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from . import runtime

#: Names accepted by `load` (and by `AELIB_DATASET`).
DATASETS = ("mnist", "fashion-mnist", "kmnist", "digits")

#: Fraction of the training set held out for validation (fixed, stratified).
VAL_FRACTION = 0.1
#: Fraction of scikit-learn's digits used as test set (they come unsplit).
DIGITS_TEST_FRACTION = 0.2
#: Random state of the fixed splits; deliberately independent of AELIB_SEED.
SPLIT_STATE = 20240601

#: torchvision class behind each downloadable dataset name.
TORCHVISION_CLASSES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset named explicitly is neither on disk nor downloadable."""


@dataclass(frozen=True)
class Dataset:
    """Train / val / test splits of one image dataset, held in memory.

    `x_*`: float32 `(N, 1, 28, 28)` in [0, 1]; `y_*`: int64 `(N,)` labels.
    `name` is the dataset's name and `source` says where it came from.
    """

    name: str
    source: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one image, `(channels, height, width)`."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return int(self.y_train.max().item()) + 1

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on `device` (data then stay there for training)."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)

    def with_val_in_train(self) -> Dataset:
        """A copy whose training split also holds the validation images (training first).

        For repeating a protocol that holds nothing back, such as PyTorch's
        examples, which train on all 60,000 MNIST images. The validation split
        is kept as it was, so its curve is no longer a held-out measure; the
        test split is untouched. The name stays, and `train.cache_path` keys
        the new training split by its own fingerprint. Introduced in chapter 6.
        """
        return replace(self, x_train=torch.cat([self.x_train, self.x_val]),
                       y_train=torch.cat([self.y_train, self.y_val]))

    @property
    def is_complete_mnist(self) -> bool:
        """True for the complete MNIST: 10,000 test and at least 60,000 train + val images.

        The runs whose protocol matches a published one (the papers' numbers
        are on the complete MNIST) check them against the published figure
        only when this holds; `with_val_in_train` keeps it true.
        """
        return (self.name == "mnist" and len(self.x_test) == 10_000
                and len(self.x_train) + len(self.x_val) >= 60_000)

    def summary(self) -> str:
        """Two short lines: name, split sizes and image shape; then where the images come from."""
        return (
            f"{self.name}: {len(self.x_train):,} train / {len(self.x_val):,} val / "
            f"{len(self.x_test):,} test images of shape {tuple(self.image_shape)}\n"
            f"source: {self.source}"
        )


def resolve_name(name: str | None = None) -> str:
    """Normalise a dataset name (`None` reads `AELIB_DATASET`, default 'auto').

    Unknown names raise `ValueError` suggesting the closest valid one.
    """
    raw = name if name is not None else (runtime._env("AELIB_DATASET") or "auto")
    key = raw.strip().lower().replace("_", "-")
    if key in DATASETS or key == "auto":
        return key
    valid = ", ".join((*DATASETS, "auto"))
    close = difflib.get_close_matches(key, [*DATASETS, "auto"], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown dataset {raw!r}.{hint} Valid names: {valid}.")


def load(name: str | None = None, data_dir: str | Path | None = None, *,
         download: bool = True, verbose: bool = True) -> Dataset:
    """Load a dataset by name and split it into train / val / test.

    `name`: 'mnist', 'fashion-mnist', 'kmnist', 'digits' or 'auto'
    (default: `AELIB_DATASET`, else 'auto'). 'auto' uses MNIST when it is on
    disk under `data_dir` (default `AELIB_DATA_DIR`) and otherwise
    scikit-learn's 8x8 digits, upsampled to 28x28; it never downloads and it
    says which it chose. A dataset named explicitly is read from disk or, if
    `download` is true, downloaded by torchvision; when neither works a
    `DatasetNotFoundError` says where it looked and what to do, never falling
    back to another dataset. Prints one summary line when `verbose`.
    Returns a `Dataset` on the CPU; call `.to(device)` to move it.
    Introduced in chapter 1.
    """
    key = resolve_name(name)
    root = Path(data_dir).expanduser().resolve() if data_dir is not None else runtime.data_dir()
    note = ""
    if key == "auto":
        if _torchvision_on_disk("mnist", root):
            key = "mnist"
            note = f"AELIB_DATASET=auto: found MNIST under {root}, using it."
        else:
            key = "digits"
            note = (f"AELIB_DATASET=auto: MNIST is not under {root}, so this run uses "
                    f"scikit-learn's 8x8 digits, upsampled to 28x28 (set AELIB_DATASET and "
                    f"AELIB_DATA_DIR to use MNIST).")
    if key == "digits":
        dataset = _load_digits()
    else:
        dataset = _load_torchvision(key, root, download=download)
    if verbose:
        if note:
            print(note)
        print(dataset.summary())
    return dataset


def _torchvision_on_disk(key: str, root: Path) -> bool:
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION_CLASSES[key])
    raw = root / cls.__name__ / "raw"
    names = [Path(url).name for url, _ in cls.resources]
    return all((raw / n).exists() or (raw / n.removesuffix(".gz")).exists() for n in names)


def _load_torchvision(key: str, root: Path, *, download: bool) -> Dataset:
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION_CLASSES[key])
    on_disk = _torchvision_on_disk(key, root)
    if not on_disk and not download:
        raise DatasetNotFoundError(
            f"{key} is not on disk: looked for {cls.__name__}/raw/ under {root}. Set "
            f"AELIB_DATA_DIR to the folder that holds {cls.__name__}/raw/, or allow a "
            f"download, or use AELIB_DATASET=digits (ships with scikit-learn)."
        )
    try:
        train = cls(str(root), train=True, download=not on_disk)
        test = cls(str(root), train=False, download=False)
    except Exception as err:  # network errors come in many types
        raise DatasetNotFoundError(
            f"{key} is not on disk under {root} ({cls.__name__}/raw/) and could not be "
            f"downloaded ({type(err).__name__}: {err}). Connect to the internet, or set "
            f"AELIB_DATA_DIR to a folder that holds {cls.__name__}/raw/, or use "
            f"AELIB_DATASET=digits (ships with scikit-learn)."
        ) from err
    x_all = _to_unit_images(train.data)
    y_all = train.targets.long()
    x_test = _to_unit_images(test.data)
    y_test = test.targets.long()
    tr, va = stratified_split(y_all, VAL_FRACTION)
    return Dataset(key, f"torchvision {cls.__name__} from {root}", x_all[tr], y_all[tr],
                   x_all[va], y_all[va], x_test, y_test)


def _to_unit_images(raw: torch.Tensor) -> torch.Tensor:
    # (N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1]
    return (raw.float() / 255.0).unsqueeze(1).contiguous()


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x8 = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    x = upsample(x8, 28)
    y = torch.tensor(bunch.target, dtype=torch.long)
    rest, te = stratified_split(y, DIGITS_TEST_FRACTION)
    tr, va = stratified_split(y[rest], VAL_FRACTION)
    tr, va = rest[tr], rest[va]
    return Dataset("digits", "scikit-learn 8x8 digits, bilinear-upsampled to 28x28",
                   x[tr], y[tr], x[va], y[va], x[te], y[te])


def upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of images `x: (N, C, h, w)` to `(N, C, size, size)`, clipped to [0, 1]."""
    if x.dim() != 4:
        raise ValueError(f"upsample expects images of shape (N, C, H, W), got {tuple(x.shape)}.")
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return out.clamp_(0.0, 1.0).contiguous()


def stratified_split(labels: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices `0..N-1` into (keep, held_out), stratified by `labels: (N,)`.

    `fraction` of each class goes to `held_out`; the split uses the fixed
    `SPLIT_STATE`, never the global seed. Returns two sorted index tensors.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}.")
    idx = torch.arange(len(labels))
    keep, held = train_test_split(idx.numpy(), test_size=fraction, stratify=labels.numpy(),
                                  random_state=SPLIT_STATE)
    return torch.as_tensor(sorted(keep)), torch.as_tensor(sorted(held))


def batch_indices(n: int, batch_size: int, *, shuffle: bool = True,
                  generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Yield index tensors that cover `0..n-1` once, in batches of `batch_size`.

    With `shuffle` the order is a permutation drawn from `generator` (on the
    CPU, so the same seed gives the same order on every device). The last
    batch may be smaller. Index a device-resident tensor with them:
    `x[idx]` is one batch with no per-sample Python. Introduced in chapter 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def first_of_each_class(labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Indices of the first example of each class in `labels: (N,)`, in class order.

    Used to pick reconstructions deliberately (one per digit) instead of
    whatever the last batch held (erratum 12).
    """
    classes = range(int(labels.max()) + 1 if num_classes is None else num_classes)
    picks = []
    for c in classes:
        hits = (labels == c).nonzero()
        if len(hits) == 0:
            raise ValueError(f"class {c} does not occur in the labels.")
        picks.append(int(hits[0]))
    return torch.tensor(picks)


def one_class(ds: Dataset, c: int) -> Dataset:
    """`ds` with its training and validation splits cut down to the images of class `c`.

    The test split keeps every class: the one-class protocol of anomaly
    detection trains on one kind of image and asks how the model scores all
    the others. The name gains a suffix (`"digits, class 3 only"`), so a
    cached model trained on one class is never served for another.
    Introduced in chapter 7.
    """
    present = ds.y_train.unique().tolist()
    if c not in present:
        raise ValueError(f"class {c!r} does not occur in {ds.name}'s training labels {present}.")
    train, val = ds.y_train == c, ds.y_val == c
    return replace(ds, name=f"{ds.name}, class {c} only", x_train=ds.x_train[train],
                   y_train=ds.y_train[train], x_val=ds.x_val[val], y_val=ds.y_val[val])


def per_class_sample(labels: torch.Tensor, n: int, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """Indices of `n` examples drawn at random from each class of `labels: (N,)`, sorted.

    For experiments with few labels ("10 labelled images per digit"). Every
    class must have at least `n` examples. Draws from `generator` on the CPU.
    Introduced in chapter 7.
    """
    labels = labels.cpu()
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    picks = []
    for c in labels.unique().tolist():
        members = (labels == c).nonzero().flatten()
        if len(members) < n:
            raise ValueError(f"class {c} has only {len(members)} examples, fewer than n={n}.")
        picks.append(members[torch.randperm(len(members), generator=generator)[:n]])
    return torch.cat(picks).sort().values


# ----------------------------------------------------------------- noise (chapter 3)

#: Corruptions accepted by `add_noise`, with the meaning and valid range of `level`.
NOISE_TYPES = {
    "gaussian": "standard deviation sigma of added Gaussian noise, >= 0",
    "masking": "fraction of pixels set to 0 (dropped), in [0, 1]",
    "salt_pepper": "fraction of pixels set to 0 or 1 (half each on average), in [0, 1]",
}


def _draw_like(x: torch.Tensor, fn, generator: torch.Generator | None,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """`fn(x.shape)` (torch.rand or torch.randn) on `x`'s device, drawn where `generator`
    lives, or on the CPU without one: the global CPU stream is the one `fit` checkpoints,
    and a CPU draw gives the same numbers on every device."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return fn(x.shape, generator=generator, device=gen_device, dtype=dtype).to(x.device)


def add_noise(x: torch.Tensor, kind: str, level: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Corrupt images `x: (N, C, H, W)` in [0, 1]; returns a new tensor, clipped to [0, 1].

    `kind` is one of `NOISE_TYPES`: 'gaussian' adds `level * N(0, 1)` to
    every pixel; 'masking' sets a random `level` fraction of the pixels to
    0; 'salt_pepper' sets a random `level` fraction to 0 or 1 with equal
    probability. Randomness comes from `generator` (reproducible; it may
    live on the CPU while `x` is on a GPU) or, if None, from the global
    torch RNG (`fit` checkpoints its state, so a resumed run continues the
    same draws). Introduced in chapter 3.
    """
    if kind not in NOISE_TYPES:
        hint = difflib.get_close_matches(str(kind), list(NOISE_TYPES), n=1)
        raise ValueError(f"unknown noise kind {kind!r}"
                         f"{f' (did you mean {hint[0]!r}?)' if hint else ''}; "
                         f"use one of {list(NOISE_TYPES)}.")
    try:
        level = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"noise level must be a number, got {level!r}.") from None
    upper = float("inf") if kind == "gaussian" else 1.0
    if not 0.0 <= level <= upper:
        raise ValueError(f"{kind} noise level must be the {NOISE_TYPES[kind]}; got {level}.")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("add_noise expects a floating-point tensor of images in [0, 1].")
    def draw(fn):
        return _draw_like(x, fn, generator)

    if kind == "gaussian":
        return (x + level * draw(torch.randn)).clamp_(0.0, 1.0)
    hit = draw(torch.rand) < level
    if kind == "masking":
        return x.masked_fill(hit, 0.0)
    salt = draw(torch.rand) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binary images drawn from grey ones: each pixel is 1 with probability its grey level.

    `x` holds grey levels in [0, 1] (any shape); returns a new tensor of 0.0
    and 1.0 of the same shape, dtype and device. This is the "dynamic
    binarisation" of the papers that report log-likelihoods on MNIST:
    drawn anew for each batch in training, once for the test set. A
    Bernoulli likelihood is a normalised density only on such images.
    Randomness comes from `generator` (it may live on the CPU while `x` is
    on a GPU) or, if None, the global CPU RNG, which `fit` checkpoints.
    Introduced in chapter 6.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("binarize expects a floating-point tensor of grey levels in [0, 1], "
                        f"got {type(x).__name__}"
                        f"{f' of dtype {x.dtype}' if isinstance(x, torch.Tensor) else ''}; "
                        "convert it with .float() / 255 first.")
    if not bool(((x >= 0) & (x <= 1)).all()):  # NaN fails both comparisons
        raise ValueError(f"binarize needs grey levels in [0, 1], got values from "
                         f"{float(x.min()):.3g} to {float(x.max()):.3g} (or NaN); scale the "
                         f"images first.")
    return (_draw_like(x, torch.rand, generator, dtype=x.dtype) < x).to(x.dtype)


def gaussian_toy(dim: int = 100, n_train: int = 2000, n_val: int = 500, n_test: int = 500) -> Dataset:
    """The sparse-named source's toy data: independent standard normal vectors, not images.

    Returns a `Dataset` named 'gaussian' whose `x_*` have shape `(N, 1, 1,
    dim)` (one row of `dim` values, so every model runs unchanged) and are
    **not** in [0, 1]: about half of the values are negative. Labels are all
    0. The draws are fixed (they do not depend on `AELIB_SEED`). Introduced
    in chapter 4 (erratum 3).
    """
    if not isinstance(dim, int) or dim < 1 or min(n_train, n_val, n_test) < 1:
        raise ValueError(f"dim and the split sizes must be integers >= 1, got dim={dim!r}, "
                         f"sizes {n_train}, {n_val}, {n_test}.")
    g = torch.Generator().manual_seed(SPLIT_STATE)
    x = torch.randn(n_train + n_val + n_test, 1, 1, dim, generator=g)
    y = torch.zeros(len(x), dtype=torch.long)
    a, b = n_train, n_train + n_val
    return Dataset("gaussian", f"standard normal vectors of {dim} values (the sparse-named source's "
                   f"toy data)", x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:])
