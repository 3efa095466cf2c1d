"""Principal component analysis by SVD, in torch.

Used wherever the book compares an autoencoder with PCA at the same code
size. Introduced in chapter 1; chapter 2 studies it in depth.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PCA:
    """A fitted PCA: `mean: (D,)`, `components: (k, D)` (orthonormal rows,
    ordered by decreasing variance), `explained_variance: (k,)`, and the
    input shape of one example so that `reconstruct` returns images.
    """

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor
    input_shape: tuple[int, ...]

    @property
    def k(self) -> int:
        return self.components.shape[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Coefficients `(N, k)` of examples `x: (N, ...)` (flattened, centred, projected)."""
        return (x.flatten(1) - self.mean) @ self.components.T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Examples `(N, ...)` rebuilt from coefficients `z: (N, k)`."""
        return (z @ self.components + self.mean).view(-1, *self.input_shape)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Projection of `x: (N, ...)` onto the principal subspace, same shape as `x`."""
        return self.decode(self.encode(x))


def fit_pca(x: torch.Tensor, k: int) -> PCA:
    """Fit rank-`k` PCA to examples `x: (N, ...)` by SVD of the centred data.

    Computed in float64 for accuracy and returned in `x`'s dtype. Signs are
    fixed so that the largest-magnitude entry of each component is positive
    (as scikit-learn does), which makes results reproducible. Introduced in
    chapter 1.

    The decomposition does not depend on `k`: the last few are kept, so
    fitting the same tensor for several `k` (a sweep over code sizes) runs
    one SVD. An entry is used only for the very same tensor object, not
    modified in place since (autograd's version counter); writes that
    bypass it (through `.data` or a shared NumPy array) are not seen, so
    fit a fresh tensor after such a write. Tensors that require grad or
    come from inference mode are never cached.
    """
    if x.dim() < 2 or len(x) < 2:
        raise ValueError(f"fit_pca needs at least 2 examples of shape (N, ...), got {tuple(x.shape)}.")
    n, d = len(x), x[0].numel()
    if not isinstance(k, int) or not 1 <= k <= min(n, d):
        raise ValueError(f"k must be an integer in [1, {min(n, d)}] (min of examples and "
                         f"dimensions), got {k!r}.")
    mean, s, vh = _centred_svd(x)
    comps = vh[:k]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    comps = comps * signs
    var = s[:k] ** 2 / (n - 1)
    return PCA(mean.to(x.dtype, copy=True), comps.to(x.dtype).contiguous(), var.to(x.dtype),
               tuple(x.shape[1:]))


#: The last few decompositions: (weak reference to the data, its version, mean, s, vh).
_SVD_CACHE: list[tuple[weakref.ref, int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
_SVD_CACHE_SIZE = 4


def _centred_svd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, singular values and right singular vectors of x flattened, in float64."""
    cacheable = not x.requires_grad and not x.is_inference()
    if cacheable:
        for ref, version, mean, s, vh in _SVD_CACHE:
            if ref() is x and x._version == version:
                return mean, s, vh
    flat = x.flatten(1).double()
    mean = flat.mean(dim=0)
    centred = flat - mean
    if centred.shape[0] > centred.shape[1] and not centred.requires_grad:
        # More examples than dimensions: X = QR, and the SVD of the small (D, D) factor R has
        # X's singular values and right singular vectors. It is the same backward-stable
        # computation without forming the (N, D) left factor, which PCA never uses: on a
        # (20,000, 784) matrix about a third of the time of the full SVD. (mode="r" has no
        # gradient.)
        centred = torch.linalg.qr(centred, mode="r").R
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    if cacheable:
        _SVD_CACHE[:] = [e for e in _SVD_CACHE if e[0]() is not None][-(_SVD_CACHE_SIZE - 1):]
        _SVD_CACHE.append((weakref.ref(x), x._version, mean, s, vh))
    return mean, s, vh
