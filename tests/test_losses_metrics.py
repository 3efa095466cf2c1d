import math

import pytest
import torch
import torch.nn.functional as F

from aelib import losses, metrics, pca


def test_losses_against_hand_computation():
    x = torch.tensor([[0.0, 0.5, 1.0, 0.25]])
    x_hat = torch.tensor([[0.5, 0.5, 0.5, 0.75]])
    assert losses.mse(x_hat, x).item() == pytest.approx((0.25 + 0 + 0.25 + 0.25) / 4)
    assert losses.l1(x_hat, x).item() == pytest.approx((0.5 + 0 + 0.5 + 0.5) / 4)
    assert losses.mse(x_hat, x, reduction="sum").item() == pytest.approx(0.75)
    assert losses.l1(x_hat, x, reduction="none").shape == (1, 4)
    hand = -sum(t * math.log(p) + (1 - t) * math.log(1 - p) for t, p in zip(x[0].tolist(), x_hat[0].tolist())) / 4
    assert losses.bce(x_hat, x).item() == pytest.approx(hand, rel=1e-6)


def test_losses_match_torch_on_random_images():
    g = torch.Generator().manual_seed(1)
    x, x_hat = torch.rand(8, 1, 28, 28, generator=g), torch.rand(8, 1, 28, 28, generator=g)
    assert torch.allclose(losses.mse(x_hat, x), F.mse_loss(x_hat, x))
    assert torch.allclose(losses.l1(x_hat, x), F.l1_loss(x_hat, x))
    assert torch.allclose(losses.bce(x_hat, x), F.binary_cross_entropy(x_hat, x))


def test_bce_rejects_values_outside_unit_interval():
    x = torch.rand(2, 4)
    with pytest.raises(ValueError, match=r"targets x must lie in \[0, 1\].*divide by 255"):
        losses.bce(torch.rand(2, 4), x * 255)
    with pytest.raises(ValueError, match="predictions x_hat must lie in"):
        losses.bce(x - 0.5, x)


def test_shape_mismatch_and_bad_reduction():
    with pytest.raises(ValueError, match=r"x_hat has shape \(2, 128\) but x has shape \(2, 784\)"):
        losses.mse(torch.rand(2, 128), torch.rand(2, 784))
    with pytest.raises(ValueError, match="reduction"):
        losses.mse(torch.rand(2), torch.rand(2), reduction="avg")
    with pytest.raises(ValueError, match="unknown reconstruction loss"):
        losses.reconstruction_objective("huber")


def test_psnr_and_per_image_error():
    x = torch.zeros(2, 1, 4, 4)
    x_hat = torch.full_like(x, 0.1)
    x_hat[1] = 0.01
    err = metrics.per_image_error(x_hat, x)
    assert torch.allclose(err, torch.tensor([0.01, 0.0001]))
    assert torch.allclose(metrics.psnr(x_hat, x), torch.tensor([20.0, 40.0]))


def test_pca_matches_scikit_learn():
    from sklearn.decomposition import PCA as SkPCA

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 1, 6, 6, generator=g) @ torch.randn(6, 6, generator=g)  # correlated pixels
    ours = pca.fit_pca(x, 5)
    sk = SkPCA(n_components=5, svd_solver="full").fit(x.flatten(1).double().numpy())
    assert torch.allclose(ours.explained_variance.double(), torch.tensor(sk.explained_variance_), rtol=1e-4)
    # components agree up to sign
    cos = (ours.components.double() * torch.tensor(sk.components_)).sum(1).abs()
    assert torch.allclose(cos, torch.ones(5, dtype=torch.float64), atol=1e-4)
    rec_sk = torch.tensor(sk.inverse_transform(sk.transform(x.flatten(1).double().numpy())))
    assert torch.allclose(ours.reconstruct(x).flatten(1).double(), rec_sk, atol=1e-4)
    assert ours.reconstruct(x).shape == x.shape
    with pytest.raises(ValueError, match="k must be an integer"):
        pca.fit_pca(x, 0)


def test_pca_reuses_its_decomposition_only_for_the_same_unchanged_tensor():
    from aelib import pca as pca_module

    g = torch.Generator().manual_seed(1)
    x = torch.rand(200, 1, 5, 5, generator=g, dtype=torch.float64)
    fresh = {k: pca_module.fit_pca(x.clone(), k) for k in (2, 7)}  # a new tensor each time
    for k in (2, 7, 2):  # same tensor: one SVD, the same numbers bit for bit
        cached = pca_module.fit_pca(x, k)
        assert torch.equal(cached.components, fresh[k].components)
        assert torch.equal(cached.explained_variance, fresh[k].explained_variance)
        assert torch.equal(cached.mean, fresh[k].mean)
    assert sum(entry[0]() is x for entry in pca_module._SVD_CACHE) == 1  # one SVD kept
    cached.mean.add_(1.0)  # a caller's change to its PCA never reaches the stored mean
    assert torch.equal(pca_module.fit_pca(x, 2).mean, fresh[2].mean)
    x.mul_(2.0)  # changed in place: decomposed again
    again = pca_module.fit_pca(x, 2)
    assert torch.allclose(again.explained_variance, 4 * fresh[2].explained_variance)
    assert torch.allclose(again.mean, 2 * fresh[2].mean)
    others = [torch.rand(50, 3, generator=g) for _ in range(6)]  # more tensors than entries
    for other in others:
        sk_free = pca_module.fit_pca(other.clone(), 2)
        assert torch.equal(pca_module.fit_pca(other, 2).components, sk_free.components)
    assert len(pca_module._SVD_CACHE) <= pca_module._SVD_CACHE_SIZE
    # a tensor that requires grad is not cached: each call has its own graph
    w = x.clone().requires_grad_(True)
    for _ in range(2):
        pca_module.fit_pca(w, 2).explained_variance.sum().backward()
    assert all(entry[0]() is not w for entry in pca_module._SVD_CACHE)
    with torch.inference_mode():
        frozen = x.clone()
    assert torch.equal(pca_module.fit_pca(frozen, 2).components,
                       pca_module.fit_pca(x.clone(), 2).components)


def test_tables_render_markdown():
    from aelib import plot

    md = plot.markdown_table(["k", "mse"], [[2, 0.123456], [4, 0.1]]).data
    assert md.splitlines()[0] == "| k | mse |" and "0.1235" in md
    hist = {"epoch": list(range(1, 31)), "train": {"loss": [1.0 / e for e in range(1, 31)]},
            "val": {"loss": [2.0 / e for e in range(1, 31)]}}
    lines = plot.history_table(hist, rows=10).data.splitlines()
    assert len(lines) == 2 + 10 and lines[2].startswith("| 1 |") and lines[-1].startswith("| 30 |")
    short = {"epoch": [1, 2], "train": {"loss": [1.0, 0.5]}, "val": {}}
    assert len(plot.history_table(short).data.splitlines()) == 2 + 2


def test_evaluation_mode_restores_the_mode():
    from aelib import models

    model = models.reference_s0()
    model.train()
    with metrics.evaluation_mode(model):
        assert not model.training
    assert model.training
    x = torch.rand(3, 1, 28, 28)
    assert metrics.reconstruct(model, x, batch_size=2).shape == x.shape and model.training


def test_run_note_marks_every_run_but_the_published_one():
    from types import SimpleNamespace

    from aelib import plot

    def fake(name, n_train, n_val, n_test):
        return SimpleNamespace(name=name, x_train=torch.zeros(n_train, 1), x_val=torch.zeros(n_val, 1),
                               x_test=torch.zeros(n_test, 1))

    published = str(plot.run_note(fake("mnist", 54000, 6000, 10000), quick=False, seed=0))
    assert "the run the website publishes" in published and "not the book's" not in published
    assert ("run in full mode on mnist (60,000 training images, 6,000 of them held out for "
            "validation, and 10,000 test images), seed 0") in published
    for ds, quick in ((fake("mnist", 54000, 6000, 10000), True), (fake("mnist", 7200, 800, 2000), False),
                      (fake("digits", 1400, 150, 247), False), (fake("digits", 1400, 150, 247), True)):
        note = str(plot.run_note(ds, quick=quick, seed=3))
        assert note.startswith("> **This page shows a ") and "not the book's published run" in note
        assert f"run in {'quick' if quick else 'full'} mode on {ds.name} (" in note and "seed 3" in note


def test_bound_prints_on_the_safe_side_and_is_tight():
    from fractions import Fraction

    from aelib import plot

    assert plot.bound(0.2351, decimals=2) == 0.24
    assert plot.bound(0.9359, decimals=1, up=False) == 0.9
    assert f"{plot.bound(2.41e-7, significant=2):.1e}" == "2.5e-07"
    assert f"{plot.bound(3.3e-16, significant=1):.0e}" == "4e-16"
    assert plot.bound(0.29, decimals=2) == 0.29  # exact at the printed digits: not pushed up
    assert plot.bound(-0.123, decimals=2) == -0.12 and plot.bound(-0.123, decimals=2, up=False) == -0.13
    assert plot.bound(9.96, significant=2) == 10.0 and plot.bound(0.0, significant=3) == 0.0
    assert f"{plot.bound(-1e-4, decimals=2):.2f}" == "0.00"  # never "-0.00"
    assert plot.bound(1e27, decimals=2) == 1e27  # beyond decimal's default 28 digits
    gen = torch.Generator().manual_seed(0)
    exponents = torch.randint(-8, 4, (300,), generator=gen).to(torch.float64)
    for x in (torch.rand(300, generator=gen, dtype=torch.float64) * 10.0 ** exponents).tolist():
        for d in (0, 1, 2, 4):
            up, down = plot.bound(x, decimals=d), plot.bound(x, decimals=d, up=False)
            # the printed text, read back exactly, is on the safe side of x and within one step
            printed_up, printed_down = Fraction(f"{up:.{d}f}"), Fraction(f"{down:.{d}f}")
            step = Fraction(1, 10 ** d)
            assert printed_down <= Fraction(x) <= printed_up
            assert printed_up - Fraction(x) < step and Fraction(x) - printed_down < step
        s = plot.bound(x, significant=2)
        assert Fraction(f"{s:.1e}") >= Fraction(x)
        assert Fraction(f"{s:.1e}") - Fraction(x) < Fraction(10) ** (math.floor(math.log10(x)) - 1)


def test_bound_rejects_bad_arguments():
    from aelib import plot

    with pytest.raises(ValueError, match="exactly one of decimals= or significant="):
        plot.bound(0.5)
    with pytest.raises(ValueError, match="exactly one"):
        plot.bound(0.5, decimals=1, significant=1)
    with pytest.raises(ValueError, match="finite"):
        plot.bound(float("nan"), decimals=1)
    with pytest.raises(ValueError, match="1 or more"):
        plot.bound(0.5, significant=0)


def test_printed_difference_is_what_the_reader_subtracts():
    from aelib import plot

    assert 25.26 - 25.14 < 0.15 and plot.printed_difference(25.26, 25.14, 1) == 0.2
    assert f"{plot.printed_difference(0.9481, 0.9479, 3):.3f}" == "0.000"
    assert plot.printed_difference(0.9481, 0.9479, 3) == 0  # level as printed
    assert str(plot.printed_difference(0.3, 0.1, 1)) == "0.2"  # no 0.19999999999999998
    assert plot.printed_difference(1.0, 1.04, 1) == 0 and str(plot.printed_difference(1.0, 1.04, 1)) == "0.0"
    # the same as subtracting the strings the page prints
    for a, b in [(12.349, 3.051), (0.0004, -0.0004), (7.25, 7.35), (-1.96, 2.04)]:
        for d in (0, 1, 2, 3):
            printed = float(f"{a:.{d}f}") - float(f"{b:.{d}f}")
            assert abs(plot.printed_difference(a, b, d) - printed) < 1e-9
    with pytest.raises(ValueError, match="0 or more"):
        plot.printed_difference(1, 2, -1)


def test_printed_ratio_is_what_the_reader_divides():
    from aelib import plot

    assert f"{0.06748 / 0.01262:.1f}" == "5.3"
    assert f"{plot.printed_ratio(0.06748, 0.01262, 4):.1f}" == "5.4"  # 0.0675 / 0.0126
    # the same as dividing the strings the page prints
    for a, b in [(0.0190, 0.01914), (12.349, 3.051), (-1.96, 2.04)]:
        for d in (2, 3, 4):
            printed = float(f"{a:.{d}f}") / float(f"{b:.{d}f}")
            assert abs(plot.printed_ratio(a, b, d) - printed) < 1e-12
    with pytest.raises(ValueError, match="prints as 0"):
        plot.printed_ratio(1.0, 0.00004, 4)
    with pytest.raises(ValueError, match="prints as"):
        plot.printed_ratio(1.0, float("nan"), 2)
    with pytest.raises(ValueError, match="0 or more"):
        plot.printed_ratio(1.0, 2.0, -1)
    # a difference printed with one decimal over a standard error with two
    assert plot.printed_ratio(1.7149, 0.0734, 1, decimals_b=2) == 1.7 / 0.07
    with pytest.raises(ValueError, match="0 or more"):
        plot.printed_ratio(1.0, 2.0, 1, decimals_b=-2)


def test_by_sign_follows_the_printed_difference():
    from aelib import plot

    words = ("higher than", "level with", "lower than")
    assert plot.by_sign(plot.printed_difference(25.26, 25.14, 1), *words) == "higher than"
    # 0.9481 and 0.9479 both print as 0.948: level, though a - b > 0
    assert plot.by_sign(plot.printed_difference(0.9481, 0.9479, 3), *words) == "level with"
    assert plot.by_sign(-1e-12, *words) == "lower than"
    assert plot.by_sign(-0.0, *words) == "level with"  # -0.0 has no sign a reader sees
    assert plot.by_sign(torch.tensor(2.0), 1, 0, -1) == 1  # a 0-d tensor works too
    with pytest.raises(ValueError, match="NaN"):
        plot.by_sign(float("nan"), *words)


def test_percent_apart_words_the_printed_percentage():
    from aelib import plot

    assert plot.percent_apart(0.0312) == "3.1% above"
    assert plot.percent_apart(-0.0224) == "2.2% below"
    assert plot.percent_apart(0.00049) == "level with"  # prints as 0.0%: no "0.0% above"
    assert plot.percent_apart(-0.00049) == "level with"
    assert plot.percent_apart(0.004, 0) == "level with"
    assert plot.percent_apart(0.006, 0) == "1% above"
    assert plot.percent_apart(0.0005, 2) == "0.05% above"
    with pytest.raises(ValueError, match="rel=nan"):
        plot.percent_apart(float("nan"))


def test_listed_joins_like_a_sentence():
    from aelib import plot

    assert plot.listed([2]) == "2"
    assert plot.listed(["a", "b"]) == "a and b"
    assert plot.listed(k for k in (2, 4, 8)) == "2, 4 and 8"
    with pytest.raises(ValueError, match="no items"):
        plot.listed([])


def test_paired_difference_against_scipy():
    from scipy import stats

    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, generator=g) + 0.1
    b = a + 0.05 * torch.randn(500, generator=g)
    mean, se = metrics.paired_difference(a, b)
    d = (a.double() - b.double()).numpy()
    assert math.isclose(mean, float(d.mean()), rel_tol=1e-9)
    assert math.isclose(se, float(stats.sem(d)), rel_tol=1e-9)
    # mean / se is the paired t statistic
    assert math.isclose(mean / se, float(stats.ttest_rel(a.numpy(), b.numpy()).statistic),
                        rel_tol=1e-5)
    with pytest.raises(ValueError, match="same length"):
        metrics.paired_difference(a, b[:-1])
    with pytest.raises(ValueError, match="1-d"):
        metrics.paired_difference(a.view(2, -1), b.view(2, -1))
    with pytest.raises(ValueError, match=">= 2"):
        metrics.paired_difference(a[:1], b[:1])


def test_mean_se_against_scipy():
    from scipy import stats

    v = torch.randn(300, generator=torch.Generator().manual_seed(1)) * 3 + 100
    mean, se = metrics.mean_se(v)
    assert math.isclose(mean, float(v.double().mean()), rel_tol=1e-12)
    assert math.isclose(se, float(stats.sem(v.double().numpy())), rel_tol=1e-9)
    with pytest.raises(ValueError, match="1-d"):
        metrics.mean_se(v.view(3, -1))
    with pytest.raises(ValueError, match=">= 2"):
        metrics.mean_se(v[:1])


def test_bce_without_gradients_matches_pytorchs_kernel():
    # losses.bce computes its no-gradient values with vectorised logs; they must agree with
    # F.binary_cross_entropy (log1p, clamped at -100) to rounding, saturated outputs included
    g = torch.Generator().manual_seed(0)
    p = torch.rand(64, 1, 28, 28, generator=g)
    p[0, 0, :3, 0] = torch.tensor([0.0, 1.0, 1e-30])
    for x in (torch.rand(64, 1, 28, 28, generator=g), (torch.rand(64, 1, 28, 28, generator=g) > 0.5).float()):
        x[0, 0, :3, 0] = torch.tensor([1.0, 0.0, 1.0])
        for reduction in ("none", "sum", "mean"):
            with torch.no_grad():
                ours = losses.bce(p, x, reduction=reduction)
            torch.testing.assert_close(ours, F.binary_cross_entropy(p, x, reduction=reduction),
                                       rtol=1e-5, atol=1e-6)
        # with gradients, PyTorch's kernel (whose gradient is guarded at 0 and 1) is used as it is
        q = p.clone().requires_grad_(True)
        losses.bce(q, x, reduction="sum").backward()
        assert torch.isfinite(q.grad).all()
