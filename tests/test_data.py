import pytest
import torch

from aelib import data
from conftest import write_fake_mnist


def test_digits_shapes_ranges_and_splits(capsys):
    d = data.load("digits")
    assert "digits" in capsys.readouterr().out
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.float32
        assert len(x) == len(y) and y.dtype == torch.long
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    # stratified: every class is in every split, in proportion
    for y in (d.y_train, d.y_val, d.y_test):
        counts = torch.bincount(y, minlength=10).float()
        assert counts.min() > 0 and counts.max() / counts.min() < 1.5
    # the splits do not overlap: no test image equals a training image bit for bit
    assert not any(torch.equal(d.x_test[0], x) for x in d.x_train)


def test_splits_do_not_depend_on_the_seed(monkeypatch):
    monkeypatch.setenv("AELIB_SEED", "0")
    a = data.load("digits", verbose=False)
    monkeypatch.setenv("AELIB_SEED", "3")
    torch.manual_seed(3)
    b = data.load("digits", verbose=False)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_test, b.y_test)


def test_digits_are_bilinear_upsamples_of_the_8x8_originals():
    from sklearn.datasets import load_digits
    import torch.nn.functional as F

    x8 = torch.tensor(load_digits().images[:5], dtype=torch.float32).unsqueeze(1) / 16
    ref = F.interpolate(x8, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)
    assert torch.allclose(data.upsample(x8, 28), ref)


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match=r"unknown dataset 'minst'.*Did you mean 'mnist'"):
        data.load("minst")
    with pytest.raises(ValueError, match="fashion-mnist"):
        data.resolve_name("fashion")


def test_auto_falls_back_to_digits_and_says_so(capsys, tmp_path):
    d = data.load("auto", data_dir=tmp_path)
    assert d.name == "digits"
    assert "MNIST is not under" in capsys.readouterr().out


def test_env_selects_dataset(monkeypatch):
    monkeypatch.setenv("AELIB_DATASET", "digits")
    assert data.load(verbose=False).name == "digits"


def test_explicit_mnist_missing_offline_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match=r"looked for MNIST/raw/ under .*AELIB_DATA_DIR"):
        data.load("mnist", data_dir=tmp_path, download=False)


def test_explicit_mnist_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def no_network(self):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvd.MNIST, "download", no_network)
    with pytest.raises(data.DatasetNotFoundError, match="could not be downloaded.*network is unreachable"):
        data.load("mnist", data_dir=tmp_path)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST"),
                                         ("kmnist", "KMNIST")])
def test_torchvision_datasets_from_raw_layout(tmp_path, name, folder):
    write_fake_mnist(tmp_path, folder=folder)
    d = data.load(name, data_dir=tmp_path, download=False, verbose=False)
    assert d.name == name
    assert len(d.x_train) == 180 and len(d.x_val) == 20 and len(d.x_test) == 50
    assert d.x_train.shape[1:] == (1, 28, 28) and float(d.x_train.max()) <= 1.0


def test_auto_uses_mnist_when_on_disk_and_relative_dir(tmp_path, monkeypatch, capsys):
    write_fake_mnist(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AELIB_DATA_DIR", "data")
    d = data.load()
    assert d.name == "mnist"
    assert "found MNIST" in capsys.readouterr().out


def test_batches_cover_each_sample_once_per_epoch():
    g = torch.Generator().manual_seed(0)
    for n, bs in ((10, 3), (128, 128), (1000, 7)):
        idx = torch.cat(list(data.batch_indices(n, bs, generator=g)))
        assert torch.equal(idx.sort().values, torch.arange(n))
    sizes = [len(i) for i in data.batch_indices(10, 4, shuffle=False)]
    assert sizes == [4, 4, 2]
    with pytest.raises(ValueError, match="batch_size"):
        list(data.batch_indices(10, 0))


def test_dataset_to_device_and_first_of_each_class():
    d = data.load("digits", verbose=False).to("cpu")
    picks = data.first_of_each_class(d.y_test)
    assert d.y_test[picks].tolist() == list(range(10))


def test_with_val_in_train_adds_the_validation_images_and_keeps_the_rest():
    from aelib import losses, models, train

    d = data.load("digits", verbose=False)
    merged = d.with_val_in_train()
    n = len(d.x_train)
    assert len(merged.x_train) == n + len(d.x_val) and len(merged.y_train) == len(merged.x_train)
    assert torch.equal(merged.x_train[:n], d.x_train) and torch.equal(merged.x_train[n:], d.x_val)
    assert torch.equal(merged.y_train[n:], d.y_val)
    assert merged.x_val is d.x_val and merged.x_test is d.x_test and merged.name == d.name
    # a model trained on it never shares a checkpoint with one trained on the split
    config = models.MLPConfig(latent_dim=2, hidden_dims=(8,))
    obj = losses.reconstruction_objective("mse")
    assert (train.cache_path("m", models.from_config(config, seed=0), merged, obj)
            != train.cache_path("m", models.from_config(config, seed=0), d, obj))


def test_binarize_draws_each_pixel_with_its_grey_level():
    x = torch.tensor([0.0, 1.0, 0.25, 0.75]).repeat(20_000).view(-1, 1, 2, 2)
    b = data.binarize(x, generator=torch.Generator().manual_seed(0))
    assert b.shape == x.shape and b.dtype == x.dtype
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    freq = b.mean(dim=0).flatten()
    assert freq[0] == 0 and freq[1] == 1  # black stays black, white stays white
    # the grey pixels: within 4 standard errors of their probability
    for p, f in ((0.25, freq[2]), (0.75, freq[3])):
        assert abs(float(f) - p) < 4 * (p * (1 - p) / 20_000) ** 0.5
    # reproducible with a generator, and different draws without re-seeding
    g = torch.Generator().manual_seed(0)
    assert torch.equal(data.binarize(x, generator=g), b)
    assert not torch.equal(data.binarize(x, generator=g), b)


def test_binarize_rejects_what_is_not_grey_levels():
    with pytest.raises(TypeError, match="floating-point"):
        data.binarize(torch.zeros(2, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(TypeError, match="floating-point"):
        data.binarize([0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\].*scale the images"):
        data.binarize(torch.full((1, 1, 2, 2), 255.0))
    with pytest.raises(ValueError, match="NaN"):
        data.binarize(torch.tensor([0.5, float("nan")]))


def test_is_complete_mnist_only_for_the_full_test_and_training_sets():
    def fake(name, n_train, n_val, n_test):
        x = torch.zeros(1, 1, 1, 1)
        return data.Dataset(name, "test", x.expand(n_train, 1, 1, 1), torch.zeros(n_train),
                            x.expand(n_val, 1, 1, 1), torch.zeros(n_val),
                            x.expand(n_test, 1, 1, 1), torch.zeros(n_test))

    assert fake("mnist", 54_000, 6_000, 10_000).is_complete_mnist
    assert fake("mnist", 54_000, 6_000, 10_000).with_val_in_train().is_complete_mnist
    assert not fake("mnist", 7_200, 800, 2_000).is_complete_mnist  # the 10k stand-in
    assert not fake("mnist", 7_200, 800, 10_000).is_complete_mnist
    assert not fake("fashion_mnist", 54_000, 6_000, 10_000).is_complete_mnist
    assert not data.load("digits", verbose=False).is_complete_mnist
