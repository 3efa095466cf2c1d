"""Bytes and bits: storing codes, and classical image codecs to compare with.

An autoencoder used for compression stores each image as its code; this
module turns codes into integers of a chosen width and back (`quantize`,
`dequantize`), measures what the same images cost as JPEG, WebP or PNG
files (`image_files`, through Pillow) and as JPEG images sharing one header
(`shared_jpeg_header`), and does the book-keeping of a
rate-distortion comparison (`parameter_bytes`, `bytes_at_psnr`,
`break_even`). Introduced in chapter 7.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

#: Pillow formats `image_files` accepts, with whether a quality setting applies.
FORMATS = {"JPEG": True, "PNG": False, "WEBP": True}


def code_range(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit minimum and maximum of codes `z: (N, K)`: the range a quantiser must cover.

    Measured on the training codes and stored with the decoder (2K numbers),
    so it is part of the decoder's cost, not of each image's.
    """
    if z.dim() != 2 or len(z) == 0:
        raise ValueError(f"code_range needs codes of shape (N, K) with N >= 1, got {tuple(z.shape)}.")
    return z.detach().amin(dim=0), z.detach().amax(dim=0)


def quantize(z: torch.Tensor, bits: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Uniform scalar quantisation of codes `z: (N, K)` to integers in `0 .. 2**bits - 1`.

    Each unit's range `[lo, hi]` (from `code_range`, `(K,)` each) is cut into
    `2**bits` equal steps; values outside it are clipped. Returns int64
    `(N, K)`; `bits` bits per unit are what one image costs to store.
    """
    if not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in 1..16, got {bits!r}.")
    if z.dim() != 2 or lo.shape != (z.shape[1],) or hi.shape != (z.shape[1],):
        raise ValueError(f"quantize needs z (N, K) with lo and hi of shape (K,), got "
                         f"{tuple(z.shape)}, {tuple(lo.shape)}, {tuple(hi.shape)}.")
    levels = 2**bits - 1
    span = (hi - lo).clamp(min=1e-12)
    return torch.round((z.clamp(lo, hi) - lo) / span * levels).long()


def dequantize(q: torch.Tensor, bits: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Codes `(N, K)` back from the integers of `quantize` (the centre of each step)."""
    levels = 2**bits - 1
    return lo + q.float() / levels * (hi - lo)


def encode_images(x: torch.Tensor, fmt: str = "JPEG", quality: int | None = None) -> list[bytes]:
    """Save each grey image of `x: (N, 1, H, W)` in [0, 1] as a file in memory; returns the files.

    `fmt` is 'JPEG', 'PNG' or 'WEBP' (Pillow); `quality` (1-95) applies to
    the lossy formats. Pixels are first rounded to 8 bits, as any image file
    stores them. `image_files` measures sizes and distortion from these.
    """
    from PIL import Image

    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}.")
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"image_files needs grey images (N, 1, H, W), got {tuple(x.shape)}.")
    if FORMATS[fmt] != (quality is not None):
        raise ValueError(f"{fmt} takes {'a quality (1-95)' if FORMATS[fmt] else 'no quality'}; "
                         f"got quality={quality!r}.")
    if quality is not None and not 1 <= quality <= 95:
        raise ValueError(f"quality must lie in 1..95, got {quality}.")
    pixels = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()
    options = {} if quality is None else {"quality": quality}
    files = []
    for img in pixels:
        buf = io.BytesIO()
        Image.fromarray(img, mode="L").save(buf, format=fmt, **options)
        files.append(buf.getvalue())
    return files


def decode_images(files: Sequence[bytes]) -> torch.Tensor:
    """The grey images stored in `files` (from `encode_images`), `(N, 1, H, W)` in [0, 1]."""
    from PIL import Image

    decoded = [torch.from_numpy(np.array(Image.open(io.BytesIO(f)).convert("L"))) for f in files]
    return torch.stack(decoded)[:, None].float() / 255.0


def image_files(x: torch.Tensor, fmt: str = "JPEG", quality: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Save each grey image of `x: (N, 1, H, W)` in [0, 1] as a file in memory: `(bytes, decoded)`.

    `fmt` is 'JPEG', 'PNG' or 'WEBP' (Pillow); `quality` (1-95) applies to
    the lossy formats. Pixels are first rounded to 8 bits, as any image file
    stores them. Returns the size of every file in bytes, `(N,)` int64,
    headers included, and the images decoded from those files, `(N, 1, H, W)`
    in [0, 1], to measure the distortion.
    """
    files = encode_images(x, fmt, quality)
    return torch.tensor([len(f) for f in files]), decode_images(files)


#: JPEG markers that stand alone, without a length field (SOI, EOI, RSTn, TEM).
_STANDALONE = {0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)}


def jpeg_header_bytes(data: bytes) -> int:
    """Length of a baseline JPEG file's header: from its start through the start-of-scan segment.

    The header (quantisation and Huffman tables, frame size, scan header)
    is followed by the entropy-coded image data and the 2-byte end marker.
    The header is read segment by segment (each marker's length field), so
    bytes that merely look like a marker inside a segment are skipped.
    Raises for anything that is not a single-scan JPEG.
    """
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        raise ValueError("not a complete JPEG file (no start or end marker).")
    pos, header = 2, None
    while header is None:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise ValueError(f"malformed JPEG header at byte {pos}.")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            raise ValueError(f"unexpected marker 0xFF{marker:02X} in the JPEG header at byte {pos}.")
        if marker == 0xC2:
            raise ValueError("progressive JPEG: several scans, no single header.")
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:
            header = pos
    if header > len(data) - 2:
        raise ValueError("JPEG start-of-scan segment runs past the end of the file.")
    return header


def shared_jpeg_header(files: Sequence[bytes]) -> tuple[int, torch.Tensor]:
    """What JPEG files made with one quality cost when their common header is stored once.

    Files of one size and quality setting (standard Huffman tables, as
    Pillow writes by default) carry the same header byte for byte; a
    collection can keep it once, like an autoencoder's decoder. Returns
    `(header_bytes, per_image)`: the header's length, and each file's size
    without it, `(N,)` int64. The 2-byte end marker stays with each image:
    it is what lets images stored one after another be told apart. Raises
    if the headers differ.
    """
    if len(files) == 0:
        raise ValueError("shared_jpeg_header needs at least one file.")
    n = jpeg_header_bytes(files[0])
    header = files[0][:n]
    for i, f in enumerate(files):
        if jpeg_header_bytes(f) != n or f[:n] != header:
            raise ValueError(f"file {i} has a different JPEG header; the header is not shared.")
    return n, torch.tensor([len(f) - n for f in files])


def parameter_bytes(module: nn.Module, bytes_per_value: int = 2) -> int:
    """What storing `module`'s parameters costs: number of parameters times `bytes_per_value`.

    2 bytes is float16, which is how a decoder would be shipped.
    """
    if bytes_per_value < 1:
        raise ValueError(f"bytes_per_value must be >= 1, got {bytes_per_value}.")
    return bytes_per_value * sum(p.numel() for p in module.parameters())


def bytes_at_psnr(target: float, psnrs: Sequence[float], sizes: Sequence[float]) -> float:
    """Bytes per image a codec needs to reach `target` dB, read off its curve by linear interpolation.

    `psnrs` and `sizes` are the codec's measured points (for example JPEG at
    several qualities); PSNR must rise with size. Raises if `target` lies
    outside the measured range, instead of extrapolating.
    """
    if len(psnrs) != len(sizes) or len(psnrs) < 2:
        raise ValueError(f"need at least two (psnr, size) points of equal count, got "
                         f"{len(psnrs)} and {len(sizes)}.")
    pairs = sorted(zip(psnrs, sizes))
    ps = [p for p, _ in pairs]
    if not ps[0] <= target <= ps[-1]:
        raise ValueError(f"{target:.2f} dB lies outside the measured range {ps[0]:.2f}-{ps[-1]:.2f} "
                         f"dB; measure the codec at more settings.")
    for (p0, s0), (p1, s1) in zip(pairs, pairs[1:]):
        if p0 <= target <= p1:
            return s0 if p1 == p0 else s0 + (target - p0) / (p1 - p0) * (s1 - s0)
    raise AssertionError("unreachable")


def break_even(model_bytes: float, code_bytes: float, other_bytes: float,
               other_fixed_bytes: float = 0) -> int | None:
    """Smallest number of images from which decoder-plus-codes costs no more than another codec.

    Storing N images as codes costs `model_bytes + N * code_bytes` (the
    decoder is stored once); the other codec costs
    `other_fixed_bytes + N * other_bytes` (a header shared by all images,
    0 for standalone files). Returns the smallest N >= 1 from which on the
    codes are never dearer, `ceil((model_bytes - other_fixed_bytes) /
    (other_bytes - code_bytes))`, or None when no such N exists: a code is
    not smaller than the other codec's image (so the autoencoder never pays
    for its larger fixed cost, or stops paying as N grows).
    """
    gap = other_bytes - code_bytes
    extra = model_bytes - other_fixed_bytes
    if gap < 0 or (gap == 0 and extra > 0):
        return None
    if gap == 0:
        return 1
    return max(1, math.ceil(extra / gap))
