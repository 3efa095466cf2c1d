"""Chapter 7 additions, checked against scikit-learn where it has the same thing."""

import io
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from aelib import codec, data, metrics


def test_auroc_matches_sklearn_on_continuous_scores():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(500, generator=g)
    labels = torch.rand(500, generator=g) < 0.3
    scores[labels] += 0.8
    assert metrics.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_matches_sklearn_with_many_ties():
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 5, (400,), generator=g).float()  # only five distinct values
    labels = torch.randint(0, 2, (400,), generator=g)
    assert metrics.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_extremes_and_all_ties():
    labels = torch.tensor([0, 0, 1, 1])
    assert metrics.auroc(torch.tensor([0.1, 0.2, 0.3, 0.4]), labels) == 1.0
    assert metrics.auroc(torch.tensor([0.4, 0.3, 0.2, 0.1]), labels) == 0.0
    assert metrics.auroc(torch.ones(4), labels) == 0.5


@pytest.mark.parametrize("scores, labels, message", [
    (torch.rand(5), torch.zeros(5), "both classes"),
    (torch.rand(5), torch.tensor([0, 1, 2, 0, 1]), "0/1"),
    (torch.rand(4), torch.tensor([0, 1, 0]), "4 scores but 3"),
    (torch.tensor([0.1, float("nan"), 0.2]), torch.tensor([0, 1, 1]), "NaN"),
])
def test_auroc_rejects_bad_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        metrics.auroc(scores, labels)


def test_cosine_neighbours_match_sklearn():
    g = torch.Generator().manual_seed(2)
    db, q = torch.randn(300, 12, generator=g), torch.randn(40, 12, generator=g)
    sims, idx = metrics.cosine_neighbours(q, db, k=7, batch_size=16)  # several batches
    nn_ = NearestNeighbors(n_neighbors=7, metric="cosine").fit(db.double().numpy())
    dist, ref = nn_.kneighbors(q.double().numpy())
    assert torch.equal(idx, torch.as_tensor(ref))
    assert torch.allclose(sims.double(), torch.as_tensor(1 - dist), atol=1e-5)


def test_cosine_neighbours_exclude_self_is_leave_one_out():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 5, generator=g)
    _, idx = metrics.cosine_neighbours(x, x, k=3, batch_size=8, exclude_self=True)
    assert not (idx == torch.arange(50)[:, None]).any()
    _, with_self = metrics.cosine_neighbours(x, x, k=4)
    assert torch.equal(with_self[:, 0], torch.arange(50))  # each row is its own nearest
    assert torch.equal(idx, with_self[:, 1:])


def test_cosine_neighbours_flattens_images_and_checks_sizes():
    x = torch.rand(10, 1, 4, 4)
    _, idx = metrics.cosine_neighbours(x, x, k=1)
    assert torch.equal(idx[:, 0], torch.arange(10))
    with pytest.raises(ValueError, match="same model"):
        metrics.cosine_neighbours(torch.rand(3, 4), torch.rand(5, 6), k=1)
    with pytest.raises(ValueError, match="k must lie in 1..5"):
        metrics.cosine_neighbours(torch.rand(3, 4), torch.rand(5, 4), k=6)


def test_precision_at_k_matches_sklearn_neighbours():
    g = torch.Generator().manual_seed(4)
    centres = 3 * torch.randn(4, 10, generator=g)
    db_y, q_y = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 4, (30,), generator=g)
    db = centres[db_y] + torch.randn(200, 10, generator=g)
    q = centres[q_y] + torch.randn(30, 10, generator=g)
    got = metrics.precision_at_k(q, q_y, db, db_y, ks=(1, 5, 20))
    _, ref = NearestNeighbors(n_neighbors=20, metric="cosine").fit(db.numpy()).kneighbors(q.numpy())
    hits = db_y.numpy()[ref] == q_y.numpy()[:, None]
    for k in (1, 5, 20):
        assert got[k] == pytest.approx(hits[:, :k].mean(), abs=1e-12)


def test_knn_accuracy_matches_sklearn_and_shrinks_k():
    g = torch.Generator().manual_seed(5)
    xtr, ytr = torch.randn(100, 3, generator=g), torch.randint(0, 3, (100,), generator=g)
    xte, yte = torch.randn(50, 3, generator=g), torch.randint(0, 3, (50,), generator=g)
    ref = KNeighborsClassifier(n_neighbors=5).fit(xtr.numpy(), ytr.numpy()).score(xte.numpy(), yte.numpy())
    assert metrics.knn_accuracy(xtr, ytr, xte, yte, k=5) == pytest.approx(ref)
    # two training points, k=5 -> k=2: still runs
    assert 0.0 <= metrics.knn_accuracy(xtr[:2], ytr[:2], xte, yte, k=5) <= 1.0
    with pytest.raises(ValueError, match="flatten"):
        metrics.knn_accuracy(torch.rand(4, 1, 2, 2), ytr[:4], xte, yte)


def test_one_class_auroc_uses_other_classes_as_anomalies():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    # the detector for class 0 gives its own images low scores: perfect
    scores = {0: torch.tensor([0.1, 0.2, 0.9, 0.8, 0.7, 0.6]),
              1: torch.tensor([0.1, 0.2, 0.9, 0.8, 0.7, 0.6])}
    result = metrics.one_class_auroc(scores, labels)
    assert result[0] == 1.0
    assert result[1] == pytest.approx(roc_auc_score((labels != 1).numpy(), scores[1].numpy()))


def _tiny_dataset():
    g = torch.Generator().manual_seed(6)
    y = torch.tensor([0, 1, 2] * 6)
    x = torch.rand(18, 1, 4, 4, generator=g)
    return data.Dataset("tiny", "test", x, y, x[:6], y[:6], x[6:], y[6:])


def test_one_class_keeps_only_one_class_for_training():
    ds = _tiny_dataset()
    one = data.one_class(ds, 2)
    assert (one.y_train == 2).all() and len(one.y_train) == 6
    assert (one.y_val == 2).all() and len(one.y_val) == 2
    assert torch.equal(one.y_test, ds.y_test)  # every class stays in the test set
    assert "class 2" in one.name and one.name != ds.name
    with pytest.raises(ValueError, match="class 7"):
        data.one_class(ds, 7)


def test_per_class_sample_is_balanced_and_seeded():
    y = torch.tensor([0] * 10 + [1] * 5 + [2] * 8)
    idx = data.per_class_sample(y, 3, torch.Generator().manual_seed(0))
    assert torch.equal(torch.bincount(y[idx]), torch.tensor([3, 3, 3]))
    again = data.per_class_sample(y, 3, torch.Generator().manual_seed(0))
    assert torch.equal(idx, again)
    with pytest.raises(ValueError, match="only 5 examples"):
        data.per_class_sample(y, 6)


def test_quantize_error_is_at_most_half_a_step():
    g = torch.Generator().manual_seed(7)
    z = torch.randn(200, 6, generator=g)
    lo, hi = codec.code_range(z)
    for bits in (2, 4, 8):
        q = codec.quantize(z, bits, lo, hi)
        assert q.min() >= 0 and q.max() <= 2**bits - 1
        step = (hi - lo) / (2**bits - 1)
        assert ((codec.dequantize(q, bits, lo, hi) - z).abs() <= step / 2 + 1e-6).all()
    with pytest.raises(ValueError, match="bits"):
        codec.quantize(z, 0, lo, hi)


def test_png_is_lossless_and_jpeg_gets_bigger_with_quality():
    g = torch.Generator().manual_seed(8)
    x = (torch.rand(6, 1, 16, 16, generator=g) * 255).round() / 255  # exactly 8-bit values
    sizes, back = codec.image_files(x, "PNG")
    assert torch.allclose(back, x, atol=1e-7) and (sizes > 0).all()
    small, _ = codec.image_files(x, "JPEG", quality=10)
    large, back = codec.image_files(x, "JPEG", quality=90)
    assert (large > small).all() and back.shape == x.shape
    with pytest.raises(ValueError, match="takes a quality"):
        codec.image_files(x, "JPEG")
    with pytest.raises(ValueError, match="takes no quality"):
        codec.image_files(x, "PNG", quality=50)
    with pytest.raises(ValueError, match="grey images"):
        codec.image_files(torch.rand(2, 3, 4, 4), "PNG")


def test_shared_jpeg_header_is_the_same_in_every_file_and_suffices_to_decode():
    from PIL import Image

    g = torch.Generator().manual_seed(9)
    x = torch.rand(5, 1, 28, 28, generator=g) * (torch.rand(5, 1, 1, 1, generator=g) > 0.3)
    for quality in (1, 50):
        files = codec.encode_images(x, "JPEG", quality)
        n, per_image = codec.shared_jpeg_header(files)
        assert (per_image + n == torch.tensor([len(f) for f in files])).all()
        # Independent checks. 1: the header is a common prefix of all files.
        common = 0
        while all(len(f) > common and f[common] == files[0][common] for f in files):
            common += 1
        assert 100 < n <= common
        # 2: it ends just after the start-of-scan segment (grey: 8-byte SOS).
        assert files[0][n - 10:n - 8] == b"\xff\xda" and files[0][n - 8:n - 6] == b"\x00\x08"
        # 3: another file's header plus this file's own bytes decode to this image.
        for i, f in enumerate(files):
            rebuilt = files[(i + 1) % len(files)][:n] + f[n:]
            assert np.array_equal(np.array(Image.open(io.BytesIO(rebuilt))),
                                  np.array(Image.open(io.BytesIO(f))))
        assert torch.equal(codec.decode_images(files), codec.image_files(x, "JPEG", quality)[1])
    # Segments are skipped by their length: a fake start-of-scan inside an
    # application segment is not taken for the real one.
    f = codec.encode_images(x[:1], "JPEG", 50)[0]
    fake = b"\xff\xe1\x00\x06\xff\xda\x00\x08"
    assert codec.jpeg_header_bytes(f[:2] + fake + f[2:]) == codec.jpeg_header_bytes(f) + len(fake)
    with pytest.raises(ValueError, match="not a complete JPEG"):
        codec.jpeg_header_bytes(codec.encode_images(x[:1], "PNG")[0])
    other = codec.encode_images(x[:1], "JPEG", 90)
    with pytest.raises(ValueError, match="different JPEG header"):
        codec.shared_jpeg_header([f] + other)


def test_bytes_at_psnr_interpolates_and_refuses_to_extrapolate():
    assert codec.bytes_at_psnr(25.0, [20.0, 30.0], [100, 200]) == pytest.approx(150.0)
    assert codec.bytes_at_psnr(30.0, [30.0, 20.0], [200, 100]) == pytest.approx(200.0)
    with pytest.raises(ValueError, match="outside"):
        codec.bytes_at_psnr(35.0, [20.0, 30.0], [100, 200])


def test_break_even_and_parameter_bytes():
    assert codec.break_even(1000, 10, 20) == 100
    assert codec.break_even(1001, 10, 20) == 101
    assert codec.break_even(1000, 20, 20) is None
    # a shared header on the other side: pays once (1000 - 300) / (20 - 10)
    assert codec.break_even(1000, 10, 20, 300) == 70
    assert codec.break_even(1000, 10, 20, 2000) == 1  # cheaper from the start
    assert codec.break_even(1000, 20, 10, 300) is None  # dearer per image
    assert codec.break_even(100, 20, 10, 300) is None  # cheaper at first only
    assert codec.break_even(100, 20, 20, 300) == 1
    for model, code, other, fixed in ((1000, 10, 20, 300), (5000, 7, 9.5, 80)):
        n = codec.break_even(model, code, other, fixed)  # brute force
        assert model + n * code <= fixed + n * other
        assert model + (n - 1) * code > fixed + (n - 1) * other
    layer = torch.nn.Linear(3, 2)  # 8 parameters
    assert codec.parameter_bytes(layer) == 16
    assert codec.parameter_bytes(layer, 4) == 32
    assert math.isclose(codec.bytes_at_psnr(20.0, [20.0, 20.0 + 1e-9], [5, 6]), 5)
    assert np.isfinite(codec.bytes_at_psnr(21.0, [20.0, 22.0], [5, 6]))


def test_fit_one_class_trains_each_class_on_its_own_images(tmp_path, monkeypatch):
    from aelib import models, train, losses

    monkeypatch.setenv("AELIB_CACHE_DIR", str(tmp_path))
    ds = _tiny_dataset()
    seen = {}

    def make(c):
        model = models.Autoencoder(models.MLPConfig(latent_dim=2, hidden_dims=(8,),
                                                    input_shape=(1, 4, 4)))
        seen[c] = model
        return model

    trained = train.fit_one_class("t", make, ds, losses.reconstruction_objective("mse"),
                                  num_epochs=1, batch_size=4, lr=1e-3, progress=False)
    assert sorted(trained) == [0, 1, 2] and all(trained[c] is seen[c] for c in trained)
    assert len(list(tmp_path.rglob("t-*"))) == 3  # one cached run per class


def test_reconstruct_mean_is_deterministic_for_a_vae():
    from aelib import models

    vae = models.VAE(models.VAEConfig(latent_dim=2, hidden_dims=(8,), input_shape=(1, 4, 4)))
    x = torch.rand(5, 1, 4, 4)
    a, b = metrics.reconstruct_mean(vae, x), metrics.reconstruct_mean(vae, x)
    assert torch.equal(a, b) and a.shape == x.shape
    with torch.no_grad():
        assert torch.allclose(a, vae.decode(vae.encode_distribution(x)[0]))


@pytest.mark.parametrize("fpr", [0.0, 0.01, 0.05, 0.1, 0.3, 0.5])
def test_threshold_at_fpr_matches_numpy_inverted_cdf_quantile(fpr):
    g = torch.Generator().manual_seed(10)
    scores = torch.rand(203, generator=g)  # 203 images: fpr * N is never near a whole number
    want = np.quantile(scores.double().numpy(), 1 - fpr, method="inverted_cdf")
    assert metrics.threshold_at_fpr(scores, fpr) == want


@pytest.mark.parametrize("n, fpr", [(40, 0.1), (50, 0.07), (100, 0.29), (30, 0.2), (14, 0.05), (1, 0.5)])
def test_threshold_at_fpr_is_the_smallest_that_flags_at_most_fpr(n, fpr):
    g = torch.Generator().manual_seed(n)
    for scores in (torch.randn(n, generator=g), torch.randint(0, 4, (n,), generator=g).float()):
        t = metrics.threshold_at_fpr(scores, fpr)
        allowed = round(fpr * n, 6) // 1  # exact k, also where fpr * n rounds below it
        assert t in scores.tolist()
        assert int((scores > t).sum()) <= allowed
        lower = scores[scores < t]  # every lower candidate flags more than allowed
        if len(lower):
            assert int((scores > lower.max()).sum()) > allowed


def test_threshold_at_fpr_agrees_with_sklearn_roc_curve():
    from sklearn.metrics import roc_curve

    g = torch.Generator().manual_seed(11)
    normal, anomalous = torch.randn(97, generator=g), torch.randn(50, generator=g) + 2
    scores = torch.cat([normal, anomalous])
    labels = torch.cat([torch.zeros(97), torch.ones(50)])
    fprs, _, thresholds = roc_curve(labels.numpy(), scores.numpy(), drop_intermediate=False)
    fpr_of = dict(zip(thresholds.tolist(), fprs.tolist()))  # flags score >= threshold
    for target in (0.0, 0.05, 0.2):
        t = metrics.threshold_at_fpr(normal, target)
        lowest_ok = min(th for th, f in fpr_of.items() if f <= target)
        assert lowest_ok > t and fpr_of[lowest_ok] == pytest.approx(float((normal > t).float().mean()))
        assert fpr_of[t] > target  # t is a normal score: flagging it too is one too many


@pytest.mark.parametrize("scores, fpr, message", [
    (torch.rand(5), 1.0, "0 <= fpr < 1"),
    (torch.rand(5), -0.1, "0 <= fpr < 1"),
    (torch.tensor([]), 0.1, "at least one"),
    (torch.tensor([0.1, float("nan")]), 0.1, "NaN"),
])
def test_threshold_at_fpr_rejects_bad_input(scores, fpr, message):
    with pytest.raises(ValueError, match=message):
        metrics.threshold_at_fpr(scores, fpr)


def test_tradeoff_ymax_marks_the_points_above_it_on_the_top_edge():
    import matplotlib

    matplotlib.use("Agg")
    from aelib import plot

    series = {"low": ([1, 2, 4], [10.0, 20.0, 30.0]), "high": ([1, 2, 4], [15.0, 40.0, 87.0])}
    fig = plot.tradeoff(series, "bytes", "dB", ymax=50.0)
    ax = fig.axes[0]
    assert ax.get_ylim()[1] == 50.0 and ax.get_ylim()[0] < 10.0
    marks = [line for line in ax.get_lines() if line.get_marker() == "^"]
    assert [(tuple(m.get_xdata()), tuple(m.get_ydata())) for m in marks] == [((4,), (50.0,))]
    assert marks[0].get_color() == ax.get_lines()[1].get_color()  # the "high" series' colour
    assert [t.get_text() for t in ax.texts if t.get_text()] == ["87"]  # arrows have no text
    # nothing above the cap: the axis keeps its own range and no triangle is drawn
    fig = plot.tradeoff({"low": series["low"]}, "bytes", "dB", ymax=50.0)
    assert fig.axes[0].get_ylim()[1] < 50.0 and not [t for t in fig.axes[0].texts if t.get_text()]
