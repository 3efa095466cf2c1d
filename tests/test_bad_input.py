"""Bad input gets a clear error: the right exception type, a message that names the
problem and says what to do instead.

Each case below is one mistake a reader can make with the public API of
aelib (data, models, losses, train, metrics, codec, plot, check). A case
gives the call, the exception type, a pattern that must name the problem
and a pattern that must name the fix. The second half holds property-based
tests (Hypothesis, derandomised so that CI is reproducible) of the losses
and metrics: shapes, non-negativity, invariances.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aelib import check, codec, data, losses, metrics, models, pca, plot, runtime, train
from aelib.data import DatasetNotFoundError
from aelib.train import CheckpointError


@dataclass
class Bad:
    what: str
    call: Callable[[Path], object]
    error: type[BaseException]
    problem: str  # regex: the message names what was wrong
    fix: str      # regex: and what to do


def _img(n=4, side=8):
    return torch.rand(n, 1, side, side)


def _small_model():
    return models.Autoencoder(models.MLPConfig(latent_dim=4, hidden_dims=(8,),
                                               input_shape=(1, 8, 8)))


def _saved(tmp: Path, model=None, name="model.pt") -> Path:
    path = tmp / name
    train.save_checkpoint(path, model or _small_model())
    return path


def _truncated(tmp: Path) -> Path:
    path = _saved(tmp)
    path.write_bytes(path.read_bytes()[:100])
    return path


def _newer_format(tmp: Path) -> Path:
    path = _saved(tmp)
    state = torch.load(path, weights_only=True)
    state["format_version"] = train.FORMAT_VERSION + 1
    torch.save(state, path)
    return path


def _fit(x, **kw):
    return train.fit(_small_model(), x, losses.reconstruction_objective(), num_epochs=1,
                     device="cpu", progress=False, **kw)


def _env(name, value, fn):
    def call(tmp):
        mp = pytest.MonkeyPatch()
        mp.setenv(name, value)
        try:
            return fn()
        finally:
            mp.undo()
    return call


MSE = losses.reconstruction_objective("mse")

CASES = [
    # ------------------------------------------------------------ data
    Bad("mistyped dataset name", lambda t: data.load("minst", data_dir=t),
        ValueError, r"unknown dataset 'minst'", r"Did you mean 'mnist'"),
    Bad("dataset missing offline", lambda t: data.load("mnist", data_dir=t, download=False),
        DatasetNotFoundError, r"mnist is not on disk: looked for MNIST/raw/ under", r"Set AELIB_DATA_DIR .* or use AELIB_DATASET=digits"),
    Bad("unknown noise kind", lambda t: data.add_noise(_img(), "gausian", 0.1),
        ValueError, r"unknown noise kind 'gausian'", r"did you mean 'gaussian'"),
    Bad("negative noise level", lambda t: data.add_noise(_img(), "gaussian", -0.1),
        ValueError, r"noise level", r"standard deviation|>= 0|must be"),
    Bad("masking fraction above 1", lambda t: data.add_noise(_img(), "masking", 1.5),
        ValueError, r"masking noise level", r"fraction of pixels .* in \[0, 1\]"),
    Bad("integer images for noise", lambda t: data.add_noise(torch.zeros(2, 1, 8, 8, dtype=torch.long), "gaussian", 0.1),
        TypeError, r"floating-point", r"images in \[0, 1\]"),
    Bad("batch size 0", lambda t: list(data.batch_indices(10, 0)),
        ValueError, r"batch_size", r">= 1"),
    Bad("class absent from the labels", lambda t: data.one_class(data.load("digits"), 12),
        ValueError, r"class 12 does not occur", r"training labels \["),
    Bad("more examples per class than exist", lambda t: data.per_class_sample(torch.tensor([0, 0, 1]), 2),
        ValueError, r"class 1 has only 1 examples", r"fewer than n=2"),
    # ------------------------------------------------------------ runtime
    Bad("cuda requested without a GPU", lambda t: runtime.get_device("cuda")
        if not torch.cuda.is_available() else pytest.skip("a GPU is present"),
        RuntimeError, r"no CUDA GPU is available", r"AELIB_DEVICE=cpu"),
    Bad("device name mistyped", lambda t: runtime.get_device("gpu"),
        RuntimeError, r"'gpu' is not", r"use 'cpu', 'cuda\[:N\]'|Use one of 'cpu'"),
    Bad("seed not a number", _env("AELIB_SEED", "zero", runtime.get_seed),
        ValueError, r"AELIB_SEED='zero' is not an integer", r"AELIB_SEED=0"),
    Bad("quick flag mistyped", _env("AELIB_QUICK", "yes", runtime.is_quick),
        ValueError, r"AELIB_QUICK='yes'", r"use 1 for quick mode"),
    # ------------------------------------------------------------ models
    Bad("latent size 0", lambda t: models.MLPConfig(latent_dim=0),
        ValueError, r"latent_dim must be an integer >= 1, got 0", r"needs at least one unit"),
    Bad("unknown activation", lambda t: models.MLPConfig(latent_dim=2, activation="relu6x"),
        ValueError, r"'relu6x' is not a known activation", r"use one of"),
    Bad("flattened images into a model", lambda t: _small_model()(torch.rand(4, 64)),
        ValueError, r"expected images of shape \(N, 1, 8, 8\), got \(4, 64\)",
        r"looks flattened: use x.view\(-1, 1, 8, 8\)"),
    Bad("empty batch into a model", lambda t: _small_model()(torch.rand(0, 1, 8, 8)),
        ValueError, r"empty batch", r"pass at least one image"),
    Bad("conv input not divisible", lambda t: models.ConvConfig(latent_dim=2, channels=(4, 8),
                                                              input_shape=(1, 9, 9)),
        ValueError, r"9x9\) must be divisible", r"divisible by"),
    # ------------------------------------------------------------ losses
    Bad("images outside [0, 1] for BCE", lambda t: losses.bce(_img(), _img() * 255),
        ValueError, r"must lie in \[0, 1\] but range over", r"divide by 255"),
    Bad("reconstruction of the wrong shape", lambda t: losses.mse(torch.rand(4, 64), _img()),
        ValueError, r"x_hat has shape \(4, 64\) but x has shape \(4, 1, 8, 8\)", r"decoder map back"),
    Bad("empty batch in a loss", lambda t: losses.mse(torch.rand(0, 3), torch.rand(0, 3)),
        ValueError, r"empty tensors", r"at least one example"),
    Bad("rho outside (0, 1)", lambda t: losses.kl_sparsity(torch.rand(4, 3), 1.5),
        ValueError, r"rho=1.5 must lie strictly between 0 and 1", r"such as 0.05"),
    Bad("ReLU codes for the KL penalty", lambda t: losses.kl_sparsity(torch.rand(4, 3) * 3, 0.05),
        ValueError, r"codes must lie in \[0, 1\]", r"use a sigmoid code, or l1_activity"),
    Bad("unknown reconstruction loss", lambda t: losses.reconstruction_loss("mae"),
        ValueError, r"unknown reconstruction loss 'mae'", r"use one of"),
    Bad("logvar of the wrong shape", lambda t: losses.gaussian_kl(torch.zeros(4, 3), torch.zeros(4, 2)),
        ValueError, r"got \(4, 2\)", r"logvar must have mu's shape \(4, 3\)"),
    # ------------------------------------------------------------ train
    Bad("NaN in the training images", lambda t: _fit(torch.full((8, 1, 8, 8), float("nan")), batch_size=4),
        ValueError, r"train contains NaN", r"clean or drop those examples"),
    Bad("batch larger than the dataset", lambda t: _fit(_img(8), batch_size=64),
        ValueError, r"batch_size=64 is larger than the training set \(8", r"use batch_size <= 8"),
    Bad("a Dataset passed where images are expected", lambda t: _fit(data.load("digits")),
        TypeError, r"train must be a tensor", r"pass data.x_train"),
    Bad("checkpoint of another architecture", lambda t: train.load_checkpoint(
        _saved(t), models.Autoencoder(models.MLPConfig(latent_dim=5, hidden_dims=(8,),
                                                       input_shape=(1, 8, 8)))),
        CheckpointError, r"made for a different model", r"Use the matching model, or delete the file"),
    Bad("truncated checkpoint", lambda t: train.load_checkpoint(_truncated(t), _small_model()),
        CheckpointError, r"truncated or corrupt", r"delete it and train again"),
    Bad("checkpoint from a newer aelib", lambda t: train.load_checkpoint(_newer_format(t), _small_model()),
        CheckpointError, r"newer than this aelib understands", r"upgrade aelib"),
    Bad("checkpoint that does not exist", lambda t: train.load_checkpoint(t / "none.pt", _small_model()),
        CheckpointError, r"no checkpoint at", r"train first"),
    Bad("resume with other settings", lambda t: (
        _fit(_img(8), batch_size=4, checkpoint=t / "c.pt"),
        _fit(_img(8), batch_size=8, checkpoint=t / "c.pt")),
        CheckpointError, r"was trained with .*'batch_size': 4", r"resume with the same settings"),
    # ------------------------------------------------------------ metrics, pca, codec
    Bad("AUROC labels of the wrong length", lambda t: metrics.auroc(torch.rand(5), torch.tensor([0, 1])),
        ValueError, r"5 scores but 2 labels", r"one label per score"),
    Bad("AUROC with a single class", lambda t: metrics.auroc(torch.rand(4), torch.zeros(4)),
        ValueError, r"needs both classes, got 0 positives", r"both classes"),
    Bad("AUROC scores with NaN", lambda t: metrics.auroc(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1])),
        ValueError, r"contain NaN or inf", r"check the model that made them"),
    Bad("k larger than the database", lambda t: metrics.cosine_neighbours(torch.rand(2, 3), torch.rand(5, 3), 9),
        ValueError, r"k must lie in 1..5", r"the database size"),
    Bad("features of different widths", lambda t: metrics.cosine_neighbours(torch.rand(2, 3), torch.rand(5, 4), 1),
        ValueError, r"queries have 3 features, the database 4", r"encode both with the same model"),
    Bad("PCA with too many components", lambda t: pca.fit_pca(torch.rand(5, 3), 4),
        ValueError, r"k must be an integer in \[1, 3\]", r"min of examples and dimensions"),
    Bad("quantise to 0 bits", lambda t: codec.quantize(torch.rand(2, 3), 0, torch.zeros(3), torch.ones(3)),
        ValueError, r"bits must be an integer in 1..16, got 0", r"1..16"),
    Bad("principal angles of spaces of different dimension", lambda t: metrics.principal_angles(
        torch.rand(5, 2), torch.rand(6, 2)),
        ValueError, r"got 5 and 6", r"must have the same number of rows"),
    # ------------------------------------------------------------ plot, check
    Bad("markdown table rows of the wrong width", lambda t: plot.markdown_table(["a", "b"], [[1, 2, 3]]),
        ValueError, r"row 0 has 3 cells but there are 2 headers", r"one value per header"),
    Bad("checker given the result instead of the function", lambda t: check.mse(0.5),
        TypeError, r"expects your function itself, got float", r"without calling it: check\.mse\(my_mse\)"),
]


def test_the_suite_covers_thirty_bad_inputs_or_more():
    assert len(CASES) >= 30
    assert len({c.what for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input_is_refused_with_problem_and_fix(case, tmp_path):
    with pytest.raises(case.error) as info:
        case.call(tmp_path)
    message = str(info.value)
    assert re.search(case.problem, message), f"problem not named: {message}"
    assert re.search(case.fix, message), f"no fix given: {message}"


# ----------------------------------------------------------------- properties

PROPERTY = settings(deadline=None, derandomize=True, max_examples=60)
sizes = st.tuples(st.integers(1, 6), st.integers(1, 9))
unit = st.floats(0.0, 1.0, allow_nan=False, width=32)


def _tensor(draw, shape, elements):
    values = draw(st.lists(elements, min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
    return torch.tensor(values, dtype=torch.float64).view(*shape)


@st.composite
def image_pairs(draw):
    shape = draw(sizes)
    return _tensor(draw, shape, unit), _tensor(draw, shape, unit)


@PROPERTY
@given(image_pairs())
def test_reconstruction_losses_are_non_negative_scalars_and_zero_on_a_perfect_copy(pair):
    x_hat, x = pair
    for name in ("mse", "l1", "bce"):
        value = losses.reconstruction_loss(name)(x_hat, x)
        assert value.shape == () and float(value) >= -1e-12
        per_image = metrics.per_image_error(x_hat, x, name)
        assert per_image.shape == (x.shape[0],)
    assert float(losses.mse(x, x)) == 0.0 and float(losses.l1(x, x)) == 0.0
    assert torch.allclose(losses.mse(x_hat, x), losses.mse(x, x_hat))  # symmetric


@PROPERTY
@given(st.data())
def test_gaussian_kl_is_non_negative_and_zero_exactly_at_the_prior(d):
    n, k = d.draw(sizes)
    mu = _tensor(d.draw, (n, k), st.floats(-5, 5, allow_nan=False))
    logvar = _tensor(d.draw, (n, k), st.floats(-5, 5, allow_nan=False))
    kl = losses.gaussian_kl(mu, logvar)
    assert kl.shape == (n,) and bool((kl >= -1e-12).all())
    assert torch.equal(losses.gaussian_kl(torch.zeros(n, k), torch.zeros(n, k)), torch.zeros(n))


@PROPERTY
@given(st.data(), st.floats(0.01, 0.99))
def test_kl_sparsity_is_non_negative_and_zero_when_every_unit_meets_its_target(d, rho):
    n, k = d.draw(sizes)
    h = _tensor(d.draw, (n, k), unit)
    assert float(losses.kl_sparsity(h, rho)) >= -1e-9
    assert abs(float(losses.kl_sparsity(torch.full((n, k), rho, dtype=torch.float64), rho))) < 1e-9


@st.composite
def ranked_scores(draw):
    n = draw(st.integers(2, 30))
    # distinct values a tenth apart, so that the transforms below create no ties
    scores = torch.tensor(draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n,
                                        unique=True)), dtype=torch.float64) / 10
    labels = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if labels.all() or not labels.any():
        labels[0] = not bool(labels[0])
    return scores, labels


@PROPERTY
@given(ranked_scores())
def test_auroc_lies_in_0_1_ignores_monotone_transforms_and_flips_with_the_sign(sl):
    scores, labels = sl
    value = metrics.auroc(scores, labels)
    assert 0.0 <= value <= 1.0
    assert metrics.auroc(torch.exp(scores / 50), labels) == pytest.approx(value, abs=1e-12)
    assert metrics.auroc(3 * scores + 7, labels) == pytest.approx(value, abs=1e-12)
    assert metrics.auroc(-scores, labels) == pytest.approx(1 - value, abs=1e-12)


@PROPERTY
@given(st.data())
def test_precision_at_k_is_a_fraction_and_one_for_a_single_class(d):
    n = d.draw(st.integers(2, 12))
    feats = _tensor(d.draw, (n, 3), st.floats(0.1, 5, allow_nan=False))
    labels = torch.tensor(d.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    result = metrics.precision_at_k(feats, labels, feats, labels, ks=(1, n))
    assert all(0.0 <= v <= 1.0 for v in result.values())
    same = metrics.precision_at_k(feats, torch.zeros(n), feats, torch.zeros(n), ks=(1, n))
    assert same == {1: 1.0, n: 1.0}


@PROPERTY
@given(image_pairs())
def test_psnr_has_one_value_per_image_and_grows_when_the_error_shrinks(pair):
    x_hat, x = pair
    if bool((x_hat == x).flatten(1).all(dim=1).any()):
        return  # a perfect image has infinite PSNR; covered by the unit tests
    value = metrics.psnr(x_hat, x)
    closer = metrics.psnr(x + 0.5 * (x_hat - x), x)
    assert value.shape == (x.shape[0],)
    assert bool((closer > value).all())
