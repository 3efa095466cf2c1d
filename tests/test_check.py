"""The exercise checkers catch plausible mistakes, each with its own explanation.

Mutation tests: every checker in `aelib.check.EXERCISES` is given at least
four wrong implementations a student might write; each must be rejected
with the message that names that mistake. The reference solutions are the
ones printed in the book (extracted from the chapters' solution cells), so
the test also proves that the book's solutions pass their checkers.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from aelib import check
from aelib.assignments import solution_functions

SOLUTIONS = solution_functions()


def test_every_checker_has_a_solution_in_the_book():
    assert set(SOLUTIONS) == set(check.EXERCISES), "one exercise cell per checker"


@pytest.mark.parametrize("name", list(check.EXERCISES))
def test_the_books_solution_passes(name, capsys):
    check.EXERCISES[name].checker(SOLUTIONS[name])
    out = capsys.readouterr().out
    assert out.startswith("✓ Exercise") and f"my_{name}" in out


# ----------------------------------------------------------------- wrong implementations

def _kl(rho, q):
    return rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))


def _jacobian_loop(encoder, x):
    x = x.detach().requires_grad_(True)
    h = encoder(x)
    return torch.stack([torch.autograd.grad(h[:, j].sum(), x, retain_graph=True)[0]
                        for j in range(h.shape[1])], dim=1)


def _jacobian_inplace(encoder, x):
    x.requires_grad_(True)
    h = encoder(x)
    return torch.stack([torch.autograd.grad(h[:, j].sum(), x, retain_graph=True)[0]
                        for j in range(h.shape[1])], dim=1)


def _jacobian_fd(encoder, x, eps=1e-1):
    cols = []
    for i in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, i] = eps
        cols.append((encoder(x + e) - encoder(x - e)) / (2 * eps))
    return torch.stack(cols, dim=2)


def _svd_pca(x, k, centre=True, rows=slice(None), scale=False):
    mean = x.mean(dim=0)
    _, s, vh = torch.linalg.svd(x - mean if centre else x, full_matrices=False)
    comps = vh[rows][:k] if rows != slice(None) else vh[:k]
    return mean, comps * s[:k, None] if scale else comps


def _pairs_auroc(scores, labels, tie=0.5):
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + tie * (diff == 0).double()).mean())


def _nll(z, mean, cov, half=True):
    d = z - mean
    quad = (d * torch.linalg.solve(cov, d.T).T).sum(dim=1)
    c = 0.5 if half else 1.0
    return c * quad + 0.5 * torch.logdet(cov) + 0.5 * z.shape[1] * math.log(2 * math.pi)


def _mse_per_image(x_hat, x):
    return ((x_hat - x) ** 2).flatten(1).mean(dim=1)


def _threshold(scores, fpr, shift=0, k=None):  # the (k + 1)-th largest score, shifted up
    k = int(fpr * len(scores)) if k is None else k
    return scores.sort().values[len(scores) - k - 1 + shift].item()


def _step(model, x, optimizer, *, zero=True, late_zero=False, step=True, reduce="mean", item=True):
    if zero and not late_zero:
        optimizer.zero_grad()
    squares = (model(x) - x) ** 2
    loss = squares.mean() if reduce == "mean" else squares.sum()
    loss.backward()
    if late_zero:
        optimizer.zero_grad()
    if step:
        optimizer.step()
    return loss.item() if item else loss


def _step_no_grad(model, x, optimizer):
    optimizer.zero_grad()
    with torch.no_grad():
        loss = ((model(x) - x) ** 2).mean()
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_new_optimizer(model, x, optimizer):
    return _step(model, x, torch.optim.Adam(model.parameters(), lr=1e-3))


def _step_loss_after(model, x, optimizer):
    _step(model, x, optimizer)
    return ((model(x) - x) ** 2).mean().item()


def _linear_ae(mean, k, *, bias=False, code_act=None, out_act=None, swap=False, flatten=True,
               unflatten=True, centre=True, mean_as="buffer", batch_mean=False, pair=False):
    d = mean.numel()

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(k, d, bias=bias) if swap else torch.nn.Linear(d, k, bias=bias)
            self.decoder = torch.nn.Linear(d, k, bias=bias) if swap else torch.nn.Linear(k, d, bias=bias)
            if mean_as == "buffer":
                self.register_buffer("mean", mean.clone())
            elif mean_as == "parameter":
                self.mean = torch.nn.Parameter(mean.clone())
            else:
                self.mean = mean.clone()

        def forward(self, x):
            flat = x.flatten(1) if flatten else x
            m = flat.mean(dim=0) if batch_mean else self.mean
            z = self.encoder(flat - m if centre else flat)
            z = code_act(z) if code_act else z
            out = self.decoder(z) + (m if centre else 0)
            out = out_act(out) if out_act else out
            out = out.view_as(x) if unflatten else out
            return (out, z) if pair else out

    return Linear()


def _dae(model, x, sigma, g=None, *, target="clean", corrupt=True, reduce="mean", one=False,
         scale=None, clip=True, item=False, fixed=False, inplace=False, per_pixel=False):
    gen = torch.Generator().manual_seed(0) if fixed else g
    noise = torch.randn(x.shape[1:] if one else x.shape, generator=gen)
    if inplace:
        noisy = x.add_((sigma if scale is None else scale) * noise).clamp_(0, 1)
        x_clean = noisy
    else:
        noisy = x + (sigma if scale is None else scale) * noise
        noisy = noisy.clamp(0, 1) if clip else noisy
        x_clean = x
    tgt = {"clean": x_clean, "noisy": noisy,
           "fresh": (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)}[target]
    squares = (model(noisy if corrupt else x).x_hat - tgt) ** 2
    loss = squares if per_pixel else (squares.mean() if reduce == "mean" else squares.sum())
    return loss.item() if item else loss


def _sparse(model, x, weight, rho, *, on="z", w_on="penalty", reduce="mean", detach=False,
            clamp=True, direction="rho||q", item=False):
    """The chapter-4 objective, with one mistake switched on by a keyword."""
    out = model(x)
    squares = (out.x_hat - x) ** 2
    recon = squares.mean() if reduce == "mean" else squares.flatten(1).mean(dim=1).sum()
    h = out.z if on == "z" else out.x_hat.flatten(1)
    q = (h.detach() if detach else h).mean(dim=0)
    q = q.clamp(1e-6, 1 - 1e-6) if clamp else q
    penalty = (_kl(rho, q) if direction == "rho||q" else _kl(q, rho)).sum()
    loss = recon + weight * penalty if w_on == "penalty" else (
        weight * recon + penalty if w_on == "recon" else recon + penalty)
    return loss.item() if item else loss


def _contractive(model, x, weight, *, square_slope=True, square_w=True, reduce="mean",
                 detach=False, w_on="penalty", decoder=False):
    """The chapter-5 objective, with one mistake switched on by a keyword."""
    out = model(x)
    recon = ((out.x_hat - x) ** 2).mean()
    h = out.z.detach() if detach else out.z
    w = model.decoder_weight.T if decoder else model.encoder_weight
    slope = h * (1 - h)
    per_example = (slope**2 if square_slope else slope) @ (w**2 if square_w else w).sum(dim=1)
    penalty = per_example.mean() if reduce == "mean" else per_example.sum()
    return recon + weight * penalty if w_on == "penalty" else (
        weight * recon + penalty if w_on == "recon" else recon + penalty)


def _vae(x, decoder, mu, logvar, eps, *, std="half", sample=True, pixels="sum", kl=1.0,
         kl_batch="mean", recon_batch="mean", detach_z=False, new_eps=False, item=False):
    """The chapter-6 loss (negative ELBO, mean over the batch), one mistake switched on by a keyword."""
    scale = {"half": torch.exp(0.5 * logvar), "var": torch.exp(logvar), "logvar": logvar}[std]
    noise = torch.randn_like(mu) if new_eps else eps
    z = mu + scale * noise if sample else mu
    z = z.detach() if detach_z else z
    terms = -(x * torch.log(decoder(z)) + (1 - x) * torch.log(1 - decoder(z)))
    recon = terms.flatten(1).sum(dim=1) if pixels == "sum" else terms.flatten(1).mean(dim=1)
    div = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=1)
    loss = (recon.mean() if recon_batch == "mean" else recon.sum()) + kl * (
        div.mean() if kl_batch == "mean" else div.sum())
    return loss.item() if item else loss


WRONG = {
    "train_step": [
        (lambda m, x, o: _step(m, x, o, zero=False), "optimizer.zero_grad() before loss.backward()"),
        (lambda m, x, o: _step(m, x, o, late_zero=True), "zeroing the gradients between backward"),
        (lambda m, x, o: _step(m, x, o, step=False), "the weights did not change at step 1"),
        (lambda m, x, o: _step(m, x, o, reduce="sum"), "you sum the squared errors"),
        (lambda m, x, o: _step(m, x, o, item=False), "returns a tensor; return loss.item()"),
        (_step_no_grad, "The loss has no graph to backpropagate through"),
        (_step_new_optimizer, "Use the optimizer you are given"),
        (_step_loss_after, "not the loss before the step"),
    ],
    "mse": [
        (lambda x_hat, x: ((x_hat - x) ** 2).sum(), "you sum over every element"),
        (lambda x_hat, x: ((x_hat - x) ** 2).flatten(1).mean(dim=1),
         "The exercise asks for a single number"),
        (lambda x_hat, x: (x_hat - x).abs().mean(), "that is the L1 loss"),
        (lambda x_hat, x: ((x_hat - x) ** 2).mean().sqrt(), "root mean squared error"),
        (lambda x_hat, x: x_hat.sub_(x).pow_(2).mean(), "changed its input `x_hat` in place"),
        (lambda x_hat, x: ((x_hat - x) ** 2).mean().float(), "returns torch.float32 for torch.float64"),
        (lambda x_hat, x: ((x_hat - x) ** 2).flatten(1).sum(dim=1).mean(),
         "you sum over the pixels of each image where the exercise takes the mean"),
        (lambda x_hat, x: None, "returned None (is a `return` missing?)"),
    ],
    "bce": [
        (lambda x_hat, x: -(x * torch.log(x_hat).clamp(min=-100)).mean(), "term is missing"),
        (lambda x_hat, x: (x * torch.log(x_hat) + (1 - x) * torch.log(1 - x_hat)).mean(),
         "sign error"),
        (lambda x_hat, x: -(x * torch.log(x_hat) + (1 - x) * torch.log(1 - x_hat)).mean(),
         "returns NaN or inf on black-and-white images"),
        (lambda x_hat, x: F.binary_cross_entropy(x, x_hat), "the arguments are swapped"),
        (lambda x_hat, x: F.binary_cross_entropy(x_hat, x, reduction="sum"),
         "you sum over every element"),
    ],
    "pca": [
        (lambda x, k: _svd_pca(x, k, centre=False), "from the uncentred data"),
        (lambda x, k: (x.mean(dim=0), _svd_pca(x, k)[1].T), "two dimensions are swapped"),
        (lambda x, k: (x.mean(dim=0), torch.linalg.svd(x - x.mean(0), full_matrices=False)[0][:, :k].T),
         "Those are columns of U"),
        (lambda x, k: (x.mean(dim=0), torch.linalg.svd(x - x.mean(0), full_matrices=False)[2][-k:]),
         "you kept the axes of smallest variance"),
        (lambda x, k: _svd_pca(x, k, scale=True), "not unit vectors"),
        (lambda x, k: (x.mean(dim=1), _svd_pca(x, k)[1]), "wrong shape of the mean"),
        (lambda x, k: _svd_pca(x, k)[1], "must return two things"),
    ],
    "principal_angles": [
        (lambda a, b: torch.rad2deg(torch.arccos(torch.linalg.svdvals(
            torch.linalg.qr(a).Q.T @ torch.linalg.qr(b).Q).clamp(-1, 1))), "in degrees"),
        (lambda a, b: torch.arccos(torch.linalg.svdvals(
            torch.linalg.qr(a).Q.T @ torch.linalg.qr(b).Q).clamp(-1, 1)).flip(0), "decreasing order"),
        (lambda a, b: torch.linalg.svdvals(torch.linalg.qr(a).Q.T @ torch.linalg.qr(b).Q),
         "you return the cosines"),
        (lambda a, b: torch.arccos(torch.linalg.svdvals(a.T @ b).clamp(-1, 1)),
         "orthonormalise a and b first"),
        (lambda a, b: torch.arccos(torch.linalg.svdvals(
            torch.linalg.qr(a.double()).Q.T @ torch.linalg.qr(b.double()).Q) * (1 + 1e-12)),
         "clamp the cosines to [-1, 1]"),
    ],
    "linear_autoencoder": [
        (lambda m, k: _linear_ae(m, k, bias=True), "your layers have biases"),
        (lambda m, k: _linear_ae(m, k, code_act=torch.relu), "there is a ReLU on the code"),
        (lambda m, k: _linear_ae(m, k, out_act=torch.sigmoid), "there is a sigmoid on the output"),
        (lambda m, k: _linear_ae(m, k, swap=True), "check the order of the sizes"),
        (lambda m, k: _linear_ae(m, k, flatten=False, unflatten=False), "flatten each image first"),
        (lambda m, k: _linear_ae(m, k, unflatten=False), "reshape it back to images"),
        (lambda m, k: _linear_ae(m, k, centre=False), "there is no centring"),
        (lambda m, k: _linear_ae(m, k, mean_as="parameter"), "the mean is a learned parameter"),
        (lambda m, k: _linear_ae(m, k, mean_as="attribute"), "the mean is not a buffer"),
        (lambda m, k: _linear_ae(m, k, batch_mean=True), "you centre on the mean of the batch"),
        (lambda m, k: _linear_ae(m, k, pair=True), "must return the reconstruction itself"),
        (lambda m, k: _linear_ae(m, k).state_dict(), "return the model itself"),
        (lambda m, k: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, k, bias=False),
                                          torch.nn.Linear(k, 784, bias=False)),
         "expected two weight matrices"),
    ],
    "gaussian_noise": [
        (lambda x, s, g=None: (x + s * torch.randn(x.shape, dtype=x.dtype)).clamp(0, 1),
         "ignores the `generator` argument"),
        (lambda x, s, g=None: x + s * torch.randn(x.shape, generator=g, dtype=x.dtype),
         "clip with .clamp(0, 1)"),
        (lambda x, s, g=None: (x + s**2 * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1),
         "you used sigma**2 (the variance)"),
        (lambda x, s, g=None: (x + s * torch.rand(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1),
         "Gaussian noise is torch.randn"),
        (lambda x, s, g=None: x.add_(s * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp_(0, 1),
         "changed its input `x` in place"),
        (lambda x, s, g=None: (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1).float()
         if x.dtype == torch.float32 else (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1),
         None),  # float32 noise on float64 images: promoted to float64, a correct answer
        (lambda x, s, g=None: (x + 0.01 + s * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1),
         "with sigma = 0 the images must come back unchanged"),
    ],
    "masking_noise": [
        (lambda x, f, g=None: x.masked_fill(torch.rand(x.shape, generator=g) >= f, 0.0),
         "you zeroed the pixels you should keep"),
        (lambda x, f, g=None: x * (1 - f), "every pixel must stay 0.5 or become 0"),
        (lambda x, f, g=None: x.masked_fill(torch.rand(x.shape) < f, 0.0),
         "ignores the `generator` argument"),
        (lambda x, f, g=None: x.masked_fill(torch.rand(x[:1].shape, generator=g) < f, 0.0),
         "every image got the same mask"),
        (lambda x, f, g=None: x.masked_fill_(torch.rand(x.shape, generator=g) < f, 0.0),
         "changed its input `x` in place"),
        (lambda x, f, g=None: x.masked_fill(torch.rand(x.shape, generator=g) < f, 1.0),
         "every pixel must stay 0.5 or become 0"),
    ],
    "denoising_objective": [
        (lambda m, x, s, g=None: _dae(m, x, s, g, target="noisy"),
         "you compare the output with the noisy batch"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, corrupt=False), "you feed the clean batch"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, target="fresh"), "the target is corrupted too"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, reduce="sum"), "you sum the squared errors"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, one=True), "every image got the same noise"),
        (lambda m, x, s, g=None: _dae(m, x, s, None), "ignores the `generator` argument"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, fixed=True), "the same noise on every call"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, scale=s**2), "you used sigma**2"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, clip=False), "not clipped to [0, 1]"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, item=True), "returns a Python number"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, per_pixel=True), "a single number"),
        (lambda m, x, s, g=None: _dae(m, x, s, g, inplace=True), "changed the batch x in place"),
        (lambda m, x, s, g=None: _dae(m, x, s, g).detach(), "the loss carries no gradient"),
    ],
    "l1_activity": [
        (lambda h: h.sum(dim=1).mean(), "negative ones cancel positive ones"),
        (lambda h: h.abs().mean(), "you average over the code units where the exercise takes the sum"),
        (lambda h: h.abs().sum(), "you sum over the batch where the exercise takes the mean"),
        (lambda h: h.abs().sum(dim=1), "The exercise asks for a single number"),
        (lambda h: h.square().sum(dim=1).mean(), "that is an L2 penalty"),
    ],
    "kl_sparsity": [
        (lambda h, rho: (rho * torch.log(rho / h.mean(0).clamp(1e-6, 1 - 1e-6))).sum(),
         "term is missing"),
        (lambda h, rho: _kl(h.mean(0).clamp(1e-6, 1 - 1e-6), rho).sum(), "KL(rho_hat || rho)"),
        (lambda h, rho: _kl(rho, h.clamp(1e-6, 1 - 1e-6)).sum(dim=1).mean(),
         "each unit's mean activation over the batch"),
        (lambda h, rho: _kl(rho, h.mean(0).clamp(1e-6, 1 - 1e-6)).mean(),
         "you average over the code units"),
        (lambda h, rho: _kl(rho, h.mean(0)).sum(), "clamp rho_hat to [1e-6, 1 - 1e-6]"),
        (lambda h, rho: -_kl(rho, h.mean(0).clamp(1e-6, 1 - 1e-6)).sum(), "sign error"),
    ],
    "sparse_objective": [
        (lambda m, x, w, rho: _sparse(m, x, w, rho, on="x_hat"), "on the reconstructions"),
        (lambda m, x, w, rho: _sparse(m, x, w, rho, w_on="none"), "without its weight"),
        (lambda m, x, w, rho: _sparse(m, x, w, rho, w_on="recon"),
         "the weight multiplies the reconstruction term"),
        (lambda m, x, w, rho: _sparse(m, x, w, rho, direction="q||rho"), "KL(rho_hat || rho)"),
        (lambda m, x, w, rho: _sparse(m, x, w, rho, reduce="sum"),
         "you sum the reconstruction error over the batch"),
        (lambda m, x, w, rho: _sparse(m, x, w, rho, detach=True),
         "no gradient of the penalty reaches the encoder"),
        (lambda m, x, w, rho: _sparse(m, x, w, rho, clamp=False), "clamp rho_hat"),
        (lambda m, x, w, rho: _sparse(m, x, w, rho, item=True), "returns a number (float)"),
        (lambda m, x, w, rho: m(x).x_hat.sub(x).square().mean() + w * m(x).z.abs().sum(1).mean(),
         "that is the L1 activity penalty"),
    ],
    "sigmoid_jacobian_norm": [
        (lambda h, W: (h * (1 - h)) @ (W**2).sum(dim=1), "h (1 - h) is not squared"),
        (lambda h, W: (h * (1 - h)) ** 2 @ W.sum(dim=1), "W is not squared"),
        (lambda h, W: ((h * (1 - h)) ** 2 @ (W**2).sum(dim=1)).sqrt(), "no square root"),
        (lambda h, W: h**2 @ (W**2).sum(dim=1), "the sigmoid's slope is h (1 - h)"),
        (lambda h, W: ((h * (1 - h)) ** 2 @ (W**2).sum(dim=1)).mean(), "one value per example"),
        (lambda h, W: ((h * (1 - h)) ** 2 @ (W**2).sum(dim=1)).sum(), "one value per example"),
    ],
    "encoder_jacobian": [
        (lambda e, x: _jacobian_loop(e, x).transpose(1, 2), "your Jacobians are transposed"),
        (lambda e, x: torch.autograd.grad(e(x.detach().requires_grad_()).sum(),
                                          x, allow_unused=True)[0], "raised"),
        (lambda e, x: _jacobian_inplace(e, x), "set requires_grad on its input `x` in place"),
        (lambda e, x: _jacobian_fd(e, x), "wrong values"),
        (lambda e, x: _jacobian_loop(e, x).sum(dim=1), "adds the Jacobian's rows together"),
    ],
    "contractive_objective": [
        (lambda m, x, w: _contractive(m, x, w, square_slope=False), "h (1 - h) is not squared"),
        (lambda m, x, w: _contractive(m, x, w, square_w=False), "W is not squared"),
        (lambda m, x, w: _contractive(m, x, w, reduce="sum"), "you sum the penalty over the batch"),
        (lambda m, x, w: _contractive(m, x, w, detach=True), "the codes h in the penalty are detached"),
        (lambda m, x, w: _contractive(m, x, w, w_on="none"), "without its weight"),
        (lambda m, x, w: _contractive(m, x, w, w_on="recon"),
         "the weight multiplies the reconstruction term"),
        (lambda m, x, w: _contractive(m, x, w, decoder=True), "you used the decoder's matrix"),
        (lambda m, x, w: _contractive(m, x, w).detach(), "returns a tensor without a graph"),
    ],
    "reparameterize": [
        (lambda mu, lv, g=None: mu + torch.exp(lv) * torch.randn(mu.shape, generator=g, dtype=mu.dtype),
         "you used exp(logvar), the variance"),
        (lambda mu, lv, g=None: mu + lv * torch.randn(mu.shape, generator=g, dtype=mu.dtype),
         "the scale is logvar itself"),
        (lambda mu, lv, g=None: torch.normal(mu, torch.exp(0.5 * lv), generator=g),
         "no gradient reaches mu"),
        (lambda mu, lv, g=None: mu + torch.exp(0.5 * lv) * torch.randn_like(mu),
         "ignores the `generator` argument"),
        (lambda mu, lv, g=None: mu.detach() + torch.exp(0.5 * lv) * torch.randn(
            mu.shape, generator=g, dtype=mu.dtype), "no gradient reaches mu"),
        (lambda mu, lv, g=None: mu + torch.exp(0.5 * lv) * torch.rand(mu.shape, generator=g, dtype=mu.dtype),
         "the noise must have mean 0"),
        (lambda mu, lv, g=None: mu + torch.exp(0.5 * lv) * torch.randn(mu.shape, generator=g),
         None),  # float32 noise: correct for float32 codes, the only precision checked
    ],
    "gaussian_kl": [
        (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv).sum(dim=1), "the -1 in"),
        (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1).sum(dim=1), "-logvar) is missing"),
        (lambda mu, lv: 0.5 * (lv.exp() - 1 - lv).sum(dim=1), "the mu^2 term is missing"),
        (lambda mu, lv: (mu**2 + lv.exp() - 1 - lv).sum(dim=1), "off by a constant factor: your values are 2 times"),
        (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv).mean(dim=1),
         "you average over the code units"),
        (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - 1 - lv).sum(), "one value per example"),
        (lambda mu, lv: -0.5 * (mu**2 + lv.exp() - 1 - lv).sum(dim=1), "sign error"),
        (lambda mu, lv: 0.5 * (mu**2 + lv - 1 - torch.log(lv)).sum(dim=1),
         "you used logvar as the variance"),
    ],
    "vae_loss": [
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, kl=0.0), "the KL term is missing"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, kl=-1.0), "you subtract the KL"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, std="var"),
         "you used exp(logvar), the variance, as the scale of eps"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, std="logvar"),
         "the scale of eps is logvar itself"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, sample=False), "you decoded mu itself"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, pixels="mean"),
         "you average the cross-entropy over the pixels"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, kl_batch="sum"),
         "the KL is summed over the batch"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, recon_batch="sum"),
         "the reconstruction term is summed over the batch"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, kl_batch="sum", recon_batch="sum"),
         "you sum the loss over the batch"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, new_eps=True),
         "use the eps you are given"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, detach_z=True),
         "the sample z is cut from the graph"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps, item=True), "returns a number"),
        (lambda x, d, mu, lv, eps: _vae(x, d, mu, lv, eps).detach(),
         "returns a tensor without a graph"),
    ],
    "cosine_similarity": [
        (lambda a, b: a @ b.T, "you return dot products"),
        (lambda a, b: F.normalize(a, dim=1) @ b.T, "only the queries are normalised"),
        (lambda a, b: F.normalize(a, dim=0) @ F.normalize(b, dim=0).T, "you normalised the columns"),
        (lambda a, b: 1 - F.normalize(a, dim=1) @ F.normalize(b, dim=1).T, "cosine distance"),
        (lambda a, b: F.normalize(b, dim=1) @ F.normalize(a, dim=1).T, "two dimensions are swapped"),
        (lambda a, b: a @ F.normalize(b, dim=1).T, "only the database rows are normalised"),
    ],
    "precision_at_k": [
        (lambda nl, ql, k: float((nl[:, -k:] == ql[:, None]).float().mean()), "you take the last k"),
        (lambda nl, ql, k: float((nl[:, :k] == ql[:, None]).any(dim=1).float().mean()),
         "the hit rate"),
        (lambda nl, ql, k: float((nl[:, :k] == ql[:, None]).float().sum(dim=1).mean() / nl.shape[1]),
         "not by k"),
        (lambda nl, ql, k: float((nl[:, :k + 1] == ql[:, None]).float().mean()), "k + 1 neighbours"),
        (lambda nl, ql, k: (nl[:, :k] == ql[:, None]).float().mean(dim=1), "expected a single number"),
    ],
    "auroc": [
        (lambda s, y: 1 - _pairs_auroc(s, y), "the ranking is reversed"),
        (lambda s, y: _pairs_auroc(s, y, tie=0.0), "tied scores count as 0"),
        (lambda s, y: _pairs_auroc(s, y, tie=1.0), "tied scores count as a full success"),
        (lambda s, y: float(((s > s.median()) == y.bool()).float().mean()), "wrong values"),
        (lambda s, y: torch.tensor([_pairs_auroc(s, y)] * 2), "expected a single number"),
    ],
    "gaussian_nll": [
        (lambda z, m, c: _nll(z, m, c) - 0.5 * torch.logdet(c), "log det(cov) term is missing"),
        (lambda z, m, c: _nll(z, m, c) - 0.5 * z.shape[1] * math.log(2 * math.pi),
         "the constant 0.5 K log(2 pi) is missing"),
        (lambda z, m, c: 0.5 * (((z - m) @ c) * (z - m)).sum(dim=1) + 0.5 * torch.logdet(c)
         + 0.5 * z.shape[1] * math.log(2 * math.pi), "you multiply by cov itself"),
        (lambda z, m, c: _nll(z, torch.zeros_like(m), c), "the codes are not centred"),
        (lambda z, m, c: -_nll(z, m, c), "sign error"),
        (lambda z, m, c: _nll(z, m, c, half=False), "wrong values"),
    ],
    "quantize": [
        (lambda z, b, lo, hi: torch.floor((z.clamp(lo, hi) - lo) / (hi - lo) * (2**b - 1)).long(),
         "you truncate (floor) instead of rounding"),
        (lambda z, b, lo, hi: torch.round((z - lo) / (hi - lo) * (2**b - 1)).long(), "clip z to [lo, hi]"),
        (lambda z, b, lo, hi: torch.round((z.clamp(lo, hi) - lo) / (hi - lo) * 2**b).long(),
         "the top level is 2**bits - 1"),
        (lambda z, b, lo, hi: torch.round((z.clamp(lo.min(), hi.max()) - lo.min())
                                          / (hi.max() - lo.min()) * (2**b - 1)).long(),
         "one range for every unit"),
        (lambda z, b, lo, hi: torch.round((z.clamp(lo, hi) - lo) / (hi - lo) * (2**b - 1)),
         "(integers: finish with .long())"),
    ],
    "psnr": [
        (lambda x_hat, x: 10 * torch.log10(1 / ((x_hat - x) ** 2).mean()), "one value per example"),
        (lambda x_hat, x: 10 * torch.log(1 / ((x_hat - x) ** 2).flatten(1).mean(dim=1)), "natural log"),
        (lambda x_hat, x: 20 * torch.log10(1 / ((x_hat - x) ** 2).flatten(1).mean(dim=1)), "20 log10"),
        (lambda x_hat, x: 10 * torch.log10(((x_hat - x) ** 2).flatten(1).mean(dim=1)), "sign error"),
        (lambda x_hat, x: 10 * torch.log10(1 / ((x_hat - x) ** 2).flatten(1).sum(dim=1)),
         "you sum the squared errors over the pixels"),
    ],
    "anomaly_threshold": [
        (lambda x_hat, x, fpr: _threshold(((x_hat - x) ** 2).flatten(1).sum(dim=1), fpr),
         "the sum of each image's squared errors over its 64 pixels"),
        (lambda x_hat, x, fpr: _threshold((x_hat - x).abs().flatten(1).mean(dim=1), fpr),
         "absolute errors"),
        (lambda x_hat, x, fpr: _threshold(_mse_per_image(x_hat, x), fpr, shift=1),
         "you return the k-th largest score"),
        (lambda x_hat, x, fpr: torch.quantile(_mse_per_image(x_hat, x), 1 - fpr).item(),
         "torch.quantile interpolates"),
        (lambda x_hat, x, fpr: torch.quantile(_mse_per_image(x_hat, x), fpr).item(),
         "you took the quantile at fpr, or flag with < instead of >"),
        (lambda x_hat, x, fpr: _threshold(_mse_per_image(x_hat, x), fpr, k=math.ceil(fpr * len(x))),
         "you round k = fpr * N up"),
        (lambda x_hat, x, fpr: _mse_per_image(x_hat, x)[len(x) - int(fpr * len(x)) - 1].item(),
         "sort them first"),
        (lambda x_hat, x, fpr: _mse_per_image(x_hat, x).max().item(),
         "A lower threshold would still flag at most k"),
        (lambda x_hat, x, fpr: _mse_per_image(x_hat, x), "return one number, the threshold"),
        (lambda x_hat, x, fpr: _mse_per_image(x_hat, x).sort(descending=True).values[int(fpr * len(x))],
         None),  # the (k + 1)-th largest counted from the top, as a 0-dim tensor: right
    ],
}

CASES = [(name, i, fn, message) for name, wrong in WRONG.items()
         for i, (fn, message) in enumerate(wrong)]


def test_every_checker_has_at_least_four_wrong_implementations():
    assert set(WRONG) == set(check.EXERCISES)
    for name, wrong in WRONG.items():
        rejected = [m for _, m in wrong if m is not None]
        assert len(rejected) >= 4, name


@pytest.mark.parametrize("name,i,fn,message", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_checker_explains_the_mistake(name, i, fn, message, capsys):
    fn.__name__ = f"my_{name}"
    checker = check.EXERCISES[name].checker
    if message is None:  # an unusual but correct answer must pass
        checker(fn)
        return
    with pytest.raises(check.ExerciseFailed) as info:
        checker(fn)
    text = str(info.value)
    assert message in text, text
    assert text.startswith(f"Exercise {check.EXERCISES[name].number} ")
    assert capsys.readouterr().out == ""  # no success message on failure


def test_unfinished_exercise_says_so_with_the_hint_of_its_cell():
    def my_kl_sparsity(h, rho):
        """The nbgrader stub, as a student receives it."""
        # Hint: rho_hat = h.mean(dim=0).clamp(1e-6, 1 - 1e-6); the KL of two
        # Bernoulli distributions has an 'on' and an 'off' term.
        # YOUR CODE HERE
        raise NotImplementedError()

    with pytest.raises(NotImplementedError, match=r"^Exercise 4\.2 \(the KL sparsity penalty\) is "
                                                  r"not done yet: my_kl_sparsity still raises the "
                                                  r"stub's NotImplementedError\. Hint: rho_hat = "
                                                  r"h\.mean\(dim=0\)\.clamp\(1e-6, 1 - 1e-6\); the KL "
                                                  r"of two Bernoulli distributions has an 'on' and "
                                                  r"an 'off' term\. Replace the stub"):
        check.kl_sparsity(my_kl_sparsity)

    # no source to read the hint from (a function made by exec): the message still says what to do
    namespace = {}
    exec("def my_mse(x_hat, x):\n    raise NotImplementedError", namespace)
    with pytest.raises(NotImplementedError, match=r"^Exercise 1\.1 \(the mean squared error\) is "
                                                  r"not done yet: my_mse still raises the stub's "
                                                  r"NotImplementedError\. Replace the stub"):
        check.mse(namespace["my_mse"])

    # a stub that already carries its message is passed on as it is
    def my_psnr(x_hat, x):
        raise NotImplementedError("Exercise 7.8 is not done yet. Hint: log10.")

    with pytest.raises(NotImplementedError, match=r"^Exercise 7\.8 is not done yet\. Hint: log10\. "
                                                  r"Replace the stub"):
        check.psnr(my_psnr)


@pytest.mark.parametrize("bad", [None, 3, "my_mse", torch.zeros(2)])
def test_checker_wants_the_function_itself(bad):
    with pytest.raises(TypeError, match=r"check\.mse expects your function itself.*check\.mse\(my_mse\)"):
        check.mse(bad)
