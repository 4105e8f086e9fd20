"""Common corruptions of video clips, for the out-of-distribution evaluation of Section 4.5 / Table 3.

Every corruption takes clips ``(B, T, 3, H, W)`` float in [0, 1] (CPU or GPU), returns a tensor of the same shape,
dtype and device, clamped to [0, 1], and draws its randomness from an optional ``torch.Generator`` (same seed,
same output; the random draws are made on the generator's device and moved to the clips, so a CPU generator
gives the same corruption on CPU and GPU).

The spatial corruptions and their severity tables are those of ImageNet-C (Hendrycks & Dietterich, ICLR 2019) as
kept in the ``imagecorruptions`` package (bethgelab), re-implemented here in torch. The PyPI package itself is not
used: version 1.1.2 imports the removed ``pkg_resources``, calls skimage with the removed ``multichannel``
argument, and draws from the global numpy RNG without a seed. The Table 3 set of the paper is
:data:`PAPER_CORRUPTIONS`.

Pattern: ``frame`` = a new random pattern on every frame, ``clip`` = one pattern shared by all frames of a clip
(``share_across_frames`` overrides the default where the column says "yes"), ``-`` = deterministic.

================== ========= ======= ======== =========================================================
name               family    pattern override severity parameters (1..5) / notes
================== ========= ======= ======== =========================================================
gaussian_noise     noise     frame   yes      std c = .08 .12 .18 .26 .38
shot_noise         noise     frame   no       Poisson(x c) / c, c = 60 25 12 5 3
impulse_noise      noise     frame   yes      salt & pepper on each value, amount = .03 .06 .09 .17 .27
speckle_noise      noise     frame   yes      x + x N(0, c), c = .15 .2 .35 .45 .6
gaussian_blur      blur      -       -        sigma = 1 2 3 4 6 (truncate 4, edge mode "nearest")
glass_blur         blur      frame   yes      (sigma, delta, iters) = (.7,1,2) (.9,2,1) (1,2,3) (1.1,3,2)
                                              (1.5,4,2); APPROXIMATED, see below
defocus_blur       blur      -       -        disk (radius, alias sigma) = (3,.1) (4,.5) (6,.5) (8,.5) (10,.5)
motion_blur        blur      clip    yes      (radius, sigma) = (10,3) (15,5) (15,8) (15,12) (20,15),
                                              angle ~ U(-45, 45) degrees
zoom_blur          blur      -       -        zooms 1..1.10 step .01, 1..1.15 .01, 1..1.20 .02, 1..1.25 .02,
                                              1..1.30 .03, averaged with the frame
snow               weather   frame   yes      7-tuples of ImageNet-C; snow layer motion-blurred at
                                              angle ~ U(-135, -45)
fog                weather   clip    yes      (strength, wibble decay) = (1.5,2) (2,2) (2.5,1.7) (2.5,1.5)
                                              (3,1.4), diamond-square plasma fractal
brightness         weather   -       -        HSV value + c, c = .1 .2 .3 .4 .5
contrast           digital   -       -        (x - mean) c + mean per channel, c = .4 .3 .2 .1 .05
saturate           digital   -       -        HSV saturation s c1 + c2, (c1, c2) = (.3,0) (.1,0) (2,0) (5,.1) (20,.2)
jpeg_compression   digital   -       -        Pillow JPEG quality = 25 18 15 10 7 (round trip through uint8)
pixelate           digital   -       -        box-downscale to c of the size, nearest back, c = .6 .5 .4 .3 .25
elastic_transform  digital   clip    yes      alpha = 250 x (.05 .065 .085 .1 .12), sigma = .01 of the size,
                                              max shift = .005 H (the size-generic bethgelab variant)
reversed           temporal  -       -        frames in reverse order (severity has no effect)
shuffled           temporal  clip    no       frames permuted within segments of max(2, round(f T)) frames,
                                              f = .25 .375 .5 .75 1
frozen_frames      temporal  clip    no       round(p (T-1)) random frames show the previous shown frame,
                                              p = .125 .25 .375 .5 .625
frame_rate         temporal  -       -        frame rate divided by k (each k-th frame held k times, the span
                                              kept), k = 2 3 4 5 6
================== ========= ======= ======== =========================================================

The temporal perturbations follow the kinds of Schiappa et al. (2023) (reverse, jumble, freeze, sampling rate);
their severity scales are ours. For temporal corruptions "clip" means one random permutation/choice per clip.

Deviations from ImageNet-C, and why:

- Pixel sizes. ImageNet-C's parameters are for 224 px images. By default they are used literally (a sigma of 6
  px blurs a 64 px frame much more than a 224 px one), which matches the paper's 224 px evaluation. Pass
  ``spatial_scale`` (a factor, or ``None`` for ``min(H, W) / 224``) to scale the pixel-valued parameters: the
  Gaussian/glass blur sigma, glass-blur delta, defocus radius and alias sigma, motion-blur radius and sigma (also
  inside snow). Zoom factors, pixelate, elastic, fog and the noises are already size-relative and never scaled.
- glass_blur: ImageNet-C swaps pixels one by one in a sequential Python loop, which cannot be vectorised; here
  each pixel of the inner region takes the value at a random offset in [-delta, delta) (a parallel gather per
  iteration). Displacement range and count of iterations are the same; values may be duplicated or dropped
  instead of exactly permuted.
- clipped zoom (zoom_blur, snow) trims the zoomed image around its centre, as Hendrycks' original; bethgelab
  keeps the top-left part.
- defocus_blur with a radius above 8 after scaling uses a kernel of half-width ceil(radius).
- pixelate: box downsampling is torch's area interpolation (identical to Pillow's BOX for integer factors, a
  fraction of a pixel different otherwise); the nearest upsampling is Pillow's ("nearest-exact").
- elastic_transform: the bethgelab size-generic formula (no affine part of Hendrycks' 224 px version); bilinear
  sampling with half-sample symmetric ("reflect") borders as scipy's ``map_coordinates``.
- motion blur (and snow) follow the numpy kernel of ``imagecorruptions``, not the ImageMagick (Wand) motion blur of
  the original ImageNet-C.
- Not implemented: ``frost`` (needs ImageNet-C's frost photographs, which this package does not ship and may not
  download) and ``spatter`` (needs OpenCV's Canny and distance transform).

Mini Kinetics-C / Mini SSv2-C (Yi et al., NeurIPS 2021 Datasets and Benchmarks, "Benchmarking the Robustness of
Spatial-Temporal Models"): :data:`MINI_C_CORRUPTIONS`, the benchmark's 12 corruptions in its order. The severity
scales were read from the public repository ``Newbeeyoung/Video-Corruption-Robustness``, files
``create_mini_ssv2_c.py`` and ``create_mini_kinetics_c.py``; where the two differ the Mini SSv2-C value is used
(Something-Something is the paper's data). Five are the ImageNet-C entries above with the same tables
(``shot_noise``, ``brightness``, ``saturate``, ``fog`` with one fog layer per clip); the others:

================== ========= ======= ============================================================================
name               family    pattern severity parameters (1..5) / notes
================== ========= ======= ============================================================================
minic_motion_blur  blur      -       frame i = mean of frames i-c .. i+c-1 (edges repeated), c = 1 2 3 4 6
                                     (Mini SSv2-C; Mini Kinetics-C uses 3 5 7 9 11)
rain               weather   frame   drops = area // (770 770 770 500 400) (at least 1), length (10 30 60 60 80) px, grey
                                     220 lines of slope -1/length, 3x3 box-blurred into the frame, then
                                     contrast x (.8 .8 .7 .6 .5) around each channel's mean
minic_contrast     digital   -       (x - mean) c + mean per channel, c = .5 .4 .3 .2 .1 (not ImageNet-C's)
bit_error          transport clip    H.264 stream (CRF 18), each byte replaced by a random one with probability
                                     1 / (100000 50000 30000 20000 10000) (the benchmark's ``noise`` filter)
packet_loss        transport clip    H.264 stream (CRF 18) cut into 188-byte packets, each lost with probability
                                     .01 .02 .04 .06 .10 (OUR scale: the public code has no packet loss)
h265_crf           codec     -       libx265 at CRF 27 33 39 45 51
h264_crf           codec     -       libx264 at CRF 23 30 37 44 51
minic_frame_rate   temporal  -       the clip, read as 12 fps video, re-timed to 10 8 6 4 2 fps and sampled back
                                     (each frame shows the nearest earlier low-rate frame)
================== ========= ======= ============================================================================

Deviations from the benchmark, and why:

- The benchmark corrupts whole source videos and then samples the model's frames; here the sampled clip is
  corrupted (the data pipeline stays one), so the temporal window of motion blur and the re-timing of frame rate
  are in sampled frames, read as consecutive 12 fps frames, and the codecs see only the clip's T frames.
- Codec and transport corruptions (:mod:`videotaf.analysis.codec`) encode the clip itself (the benchmark
  re-encodes or damages the dataset's WebM files); bit errors and packet loss damage an H.264 stream at CRF 18
  (near lossless), since our clean clips are decoded frames with no stream of their own.
- Motion blur keeps T frames (the benchmark drops the first and last c); rain draws per frame from the given
  generator (the benchmark's random slant is drawn but not used: its lines all have slope -1/length, as here).
- A stream that FFmpeg cannot decode at all has no clip: :func:`corrupt_clip` returns ``None`` (the robustness
  evaluation counts it as wrong); :func:`corrupt` returns black frames for it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from videotaf.analysis import codec

__all__ = [
    "CORRUPTIONS",
    "PAPER_CORRUPTIONS",
    "IMAGENET_C_CORRUPTIONS",
    "TEMPORAL_CORRUPTIONS",
    "MINI_C_CORRUPTIONS",
    "SEVERITIES",
    "Corruption",
    "corrupt",
    "corrupt_clip",
    "minic_frame_index",
    "rain_mask",
    "available",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "gaussian_kernel1d",
    "disk_kernel",
    "clipped_zoom",
    "motion_blur_offsets",
    "plasma_fractal",
]

SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE_SIZE = 224

# ----------------------------------------------------------------------------------------- parameter tables
# ImageNet-C severity tables (Hendrycks & Dietterich 2019, as in the imagecorruptions package).
GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_NOISE = (60.0, 25.0, 12.0, 5.0, 3.0)
IMPULSE_NOISE = (0.03, 0.06, 0.09, 0.17, 0.27)
SPECKLE_NOISE = (0.15, 0.2, 0.35, 0.45, 0.6)
GAUSSIAN_BLUR = (1.0, 2.0, 3.0, 4.0, 6.0)
GLASS_BLUR = ((0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
DEFOCUS_BLUR = ((3.0, 0.1), (4.0, 0.5), (6.0, 0.5), (8.0, 0.5), (10.0, 0.5))
MOTION_BLUR = ((10, 3.0), (15, 5.0), (15, 8.0), (15, 12.0), (20, 15.0))
# np.arange(1, stop, step) of ImageNet-C, written as (stop, step); the zooms are computed the numpy way.
ZOOM_BLUR = ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))
# (loc, scale, zoom, threshold, motion radius, motion sigma, blend)
SNOW = (
    (0.1, 0.3, 3.0, 0.5, 10, 4.0, 0.8),
    (0.2, 0.3, 2.0, 0.5, 12, 4.0, 0.7),
    (0.55, 0.3, 4.0, 0.9, 12, 8.0, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8.0, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12.0, 0.55),
)
FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
SATURATE = ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2))
JPEG_QUALITY = (25, 18, 15, 10, 7)
PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)
ELASTIC_ALPHA = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)
# Temporal perturbations (our severity scales).
SHUFFLE_FRACTION = (0.25, 0.375, 0.5, 0.75, 1.0)
FREEZE_FRACTION = (0.125, 0.25, 0.375, 0.5, 0.625)
FRAME_RATE_FACTOR = (2, 3, 4, 5, 6)
# Mini SSv2-C (Yi et al. 2021; see the module docstring for the files these come from).
MINIC_MOTION_FRAMES = (1, 2, 3, 4, 6)
MINIC_CONTRAST = (0.5, 0.4, 0.3, 0.2, 0.1)
MINIC_FPS = (10, 8, 6, 4, 2)
MINIC_SOURCE_FPS = 12
# (area per drop, drop length in px at 224 px, contrast factor)
RAIN = ((770, 10, 0.8), (770, 30, 0.8), (770, 60, 0.7), (500, 60, 0.6), (400, 80, 0.5))
RAIN_GREY = 220 / 255
H264_CRF = (23, 30, 37, 44, 51)
H265_CRF = (27, 33, 39, 45, 51)
BIT_ERROR_RATE = (1 / 100000, 1 / 50000, 1 / 30000, 1 / 20000, 1 / 10000)
PACKET_LOSS = (0.01, 0.02, 0.04, 0.06, 0.10)
TRANSPORT_CRF = 18


# ----------------------------------------------------------------------------------------- random draws
class _Rng:
    """Random draws from an optional generator, made on the generator's device and moved to ``device``."""

    def __init__(self, generator: torch.Generator | None, device: torch.device) -> None:
        self.generator = generator
        self.device = device
        self.source = generator.device if generator is not None else device

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, device=self.source, dtype=torch.float32).to(self.device)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.source, dtype=torch.float32).to(self.device)

    def uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * self.rand(*shape)

    def randint(self, low: int, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=self.generator, device=self.source).to(self.device)

    def randperm(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator, device=self.source).to(self.device)

    def poisson(self, rates: torch.Tensor) -> torch.Tensor:
        return torch.poisson(rates.to(self.source, torch.float32), generator=self.generator).to(self.device)


def _expand_pattern(pattern: torch.Tensor, t: int) -> torch.Tensor:
    """``(B, 1, ...)`` -> ``(B, T, ...)`` view for patterns shared across frames."""
    return pattern.expand(pattern.shape[0], t, *pattern.shape[2:])


# ----------------------------------------------------------------------------------------- helpers
def _edge_index(n: int, pad: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source indices of a 1-D signal of length ``n`` padded by ``pad`` on both sides.

    ``mode``: "replicate" (scipy "nearest"), "reflect101" (OpenCV's default, torch "reflect"), "symmetric" (scipy
    "reflect": the edge sample repeated). Works for any ``pad``, unlike ``F.pad``'s reflect mode.
    """
    idx = torch.arange(-pad, n + pad, device=device)
    return _map_index(idx, n, mode)


def _map_index(idx: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    if n == 1:
        return torch.zeros_like(idx)
    if mode == "replicate":
        return idx.clamp(0, n - 1)
    if mode == "reflect101":
        period = 2 * (n - 1)
        m = idx.remainder(period)
        return torch.where(m > n - 1, period - m, m)
    if mode == "symmetric":
        period = 2 * n
        m = idx.remainder(period)
        return torch.where(m > n - 1, period - 1 - m, m)
    raise ValueError(f"unknown edge mode {mode!r}")


def _pad2d(x: torch.Tensor, pad_h: int, pad_w: int, mode: str) -> torch.Tensor:
    """Pad the last two dims of ``x`` by index lookup (any pad size, any of the modes of :func:`_edge_index`)."""
    h, w = x.shape[-2:]
    rows = _edge_index(h, pad_h, mode, x.device)
    cols = _edge_index(w, pad_w, mode, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _conv_separable(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate every channel of ``x`` ``(N, C, H, W)`` with ``kernel`` (1-D, odd) along H then W."""
    n, c, h, w = x.shape
    r = kernel.numel() // 2
    k = kernel.to(x.dtype)
    flat = x.reshape(n * c, 1, h, w)
    flat = F.conv2d(_pad2d(flat, r, 0, mode), k.view(1, 1, -1, 1))
    flat = F.conv2d(_pad2d(flat, 0, r, mode), k.view(1, 1, 1, -1))
    return flat.view(n, c, h, w)


def _conv2d_same(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate every channel of ``x`` ``(N, C, H, W)`` with the 2-D ``kernel`` (odd sides), same-size output."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    flat = _pad2d(x.reshape(n * c, 1, h, w), kh // 2, kw // 2, mode)
    return F.conv2d(flat, kernel.to(x.dtype).view(1, 1, kh, kw)).view(n, c, h, w)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """scipy's ``gaussian_filter1d`` kernel: radius ``int(truncate * sigma + 0.5)``, normalised to sum 1."""
    if sigma <= 0:
        return torch.ones(1, dtype=torch.float64)
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * x**2 / float(sigma) ** 2)
    return k / k.sum()


def _cv2_gaussian_1d(ksize: int, sigma: float) -> torch.Tensor:
    """OpenCV ``getGaussianKernel(ksize, sigma)`` for sigma > 0."""
    x = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """ImageNet-C's anti-aliased disk: a normalised disk on a 17x17 grid (radius <= 8) or a (2 ceil(r) + 1)
    grid, blurred by a 3x3 (or 5x5) Gaussian of sigma ``alias_blur`` with OpenCV's reflect-101 border."""
    if radius <= 8:
        coords = torch.arange(-8, 9, dtype=torch.float64)
        ksize = 3
    else:
        half = math.ceil(radius)
        coords = torch.arange(-half, half + 1, dtype=torch.float64)
        ksize = 5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    disk = ((xx**2 + yy**2) <= radius**2).to(torch.float64)
    disk = disk / disk.sum()
    if alias_blur <= 0:
        return disk
    g = _cv2_gaussian_1d(ksize, alias_blur)
    return _conv_separable(disk[None, None], g, "reflect101")[0, 0]


def clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """Zoom into the centre of ``x`` ``(N, C, H, W)`` by ``zoom`` >= 1, keeping the size (ImageNet-C).

    Crops the central ``ceil(H / zoom)`` x ``ceil(W / zoom)`` window, resizes it by ``zoom`` with linear
    interpolation on scipy's ``zoom`` grid (corners aligned, output size ``round(side * zoom)``), then trims the
    result around its centre to ``H x W``.
    """
    h, w = x.shape[-2:]
    if zoom == 1.0:
        return x
    ch, cw = math.ceil(h / zoom), math.ceil(w / zoom)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    oh, ow = max(int(round(ch * zoom)), h), max(int(round(cw * zoom)), w)
    out = F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=True)
    th, tw = (oh - h) // 2, (ow - w) // 2
    return out[..., th : th + h, tw : tw + w]


def motion_blur_offsets(radius: int, sigma: float, angle: float, h: int, w: int) -> list[tuple[float, int, int]]:
    """``(weight, dy, dx)`` taps of ImageNet-C's numpy motion blur (imagecorruptions ``_motion_blur``).

    Width ``2 radius + 1`` taps with one-sided Gaussian weights (normalised over the full width) along
    ``angle`` degrees; taps stop where the shift would leave the image (the weights are then not renormalised).
    """
    width = 2 * int(radius) + 1
    k = np.exp(-(np.arange(width, dtype=np.float64) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    py, px = width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle))
    hyp = math.hypot(py, px)
    taps = []
    for i in range(width):
        dy = -math.ceil((i * py) / hyp - 0.5)
        dx = -math.ceil((i * px) / hyp - 0.5)
        if abs(dy) >= h or abs(dx) >= w:
            break
        taps.append((float(k[i]), dy, dx))
    return taps


def _motion_blur_frames(x: torch.Tensor, radius: int, sigma: float, angles: Sequence[float]) -> torch.Tensor:
    """Motion-blur each image ``x[n]`` ``(N, C, H, W)`` along ``angles[n]``: sum of weighted shifted copies,
    each shift with replicated edges (out(y, x) = in(clamp(y - dy), clamp(x - dx)))."""
    n, c, h, w = x.shape
    taps = [motion_blur_offsets(radius, sigma, a, h, w) for a in angles]
    width = max(len(t) for t in taps)
    weights = torch.zeros(n, width, dtype=x.dtype, device=x.device)
    dys = torch.zeros(n, width, dtype=torch.long)
    dxs = torch.zeros(n, width, dtype=torch.long)
    for i, frame_taps in enumerate(taps):
        for j, (wt, dy, dx) in enumerate(frame_taps):
            weights[i, j], dys[i, j], dxs[i, j] = wt, dy, dx
    dys, dxs = dys.to(x.device), dxs.to(x.device)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    out = torch.zeros_like(x)
    for j in range(width):
        rows = (ar_h[None, :] - dys[:, j : j + 1]).clamp(0, h - 1)  # (N, H)
        cols = (ar_w[None, :] - dxs[:, j : j + 1]).clamp(0, w - 1)  # (N, W)
        shifted = torch.gather(x, 2, rows[:, None, :, None].expand(n, c, h, w))
        shifted = torch.gather(shifted, 3, cols[:, None, None, :].expand(n, c, h, w))
        out = out + weights[:, j].view(n, 1, 1, 1) * shifted
    return out


def plasma_fractal(n: int, mapsize: int, wibbledecay: float, rng: _Rng) -> torch.Tensor:
    """``n`` diamond-square height maps ``(n, mapsize, mapsize)`` in [0, 1] (ImageNet-C's fog); ``mapsize`` a
    power of two."""
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"plasma_fractal: mapsize must be a power of two >= 2, got {mapsize}")
    m = torch.zeros(n, mapsize, mapsize, dtype=torch.float64, device=rng.device)
    step = mapsize
    wibble = 100.0

    def wibbled(a: torch.Tensor) -> torch.Tensor:
        noise = rng.uniform(-wibble, wibble, *a.shape).to(torch.float64)
        return a / 4 + wibble * noise

    while step >= 2:
        half = step // 2
        corner = m[:, 0::step, 0::step]
        sq = corner + corner.roll(-1, dims=1)
        sq = sq + sq.roll(-1, dims=2)
        m[:, half::step, half::step] = wibbled(sq)
        dr = m[:, half::step, half::step]
        ul = m[:, 0::step, 0::step]
        lt = dr + dr.roll(1, dims=1) + ul + ul.roll(-1, dims=2)
        m[:, 0::step, half::step] = wibbled(lt)
        tt = dr + dr.roll(1, dims=2) + ul + ul.roll(-1, dims=1)
        m[:, half::step, 0::step] = wibbled(tt)
        step //= 2
        wibble /= wibbledecay
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """RGB -> HSV on the channel axis -3 (values in [0, 1], hue in [0, 1)), as skimage/colorsys."""
    r, g, b = rgb.unbind(-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    v = maxc
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    safe = delta.clamp_min(1e-12)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(r == maxc, bc - gc, torch.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0).remainder(1.0), torch.zeros_like(h))
    return torch.stack((h, s, v), dim=-3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = hsv.unbind(-3)
    h6 = h.remainder(1.0) * 6.0
    i = torch.floor(h6)
    f = h6 - i
    p = v * (1 - s)
    q = v * (1 - s * f)
    t = v * (1 - s * (1 - f))
    i = i.long().remainder(6)
    r = torch.stack((v, q, p, p, t, v), dim=0).gather(0, i[None]).squeeze(0)
    g = torch.stack((t, v, v, q, p, p), dim=0).gather(0, i[None]).squeeze(0)
    b = torch.stack((p, p, t, v, v, q), dim=0).gather(0, i[None]).squeeze(0)
    return torch.stack((r, g, b), dim=-3)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """OpenCV RGB2GRAY weights, keeps the channel axis (size 1)."""
    r, g, b = x.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


# ----------------------------------------------------------------------------------------- corruptions
# Each takes x (B, T, 3, H, W) float, the 0-based severity index, an _Rng, the spatial scale and the pattern
# sharing flag (True = one pattern per clip), and returns the corrupted tensor (unclamped is fine).
_Fn = Callable[[torch.Tensor, int, _Rng, float, bool], torch.Tensor]


def _noise_shape(x: torch.Tensor, share: bool) -> tuple[int, ...]:
    b, t = x.shape[:2]
    return (b, 1 if share else t, *x.shape[2:])


def _gaussian_noise(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    n = rng.randn(*_noise_shape(x, share)).to(x.dtype)
    return x + GAUSSIAN_NOISE[s] * _expand_pattern(n, x.shape[1])


def _shot_noise(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    c = SHOT_NOISE[s]
    return rng.poisson(x.clamp(0, 1) * c).to(x.dtype) / c


def _impulse_noise(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    shape = _noise_shape(x, share)
    flipped = _expand_pattern(rng.rand(*shape) < IMPULSE_NOISE[s], x.shape[1])
    salt = _expand_pattern(rng.rand(*shape) < 0.5, x.shape[1])
    return torch.where(flipped, salt.to(x.dtype), x)


def _speckle_noise(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    n = rng.randn(*_noise_shape(x, share)).to(x.dtype)
    return x + x * SPECKLE_NOISE[s] * _expand_pattern(n, x.shape[1])


def _frames(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, *x.shape[2:])


def _gaussian_blur(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    k = gaussian_kernel1d(GAUSSIAN_BLUR[s] * scale).to(x.device)
    return _conv_separable(_frames(x), k, "replicate").view_as(x)


def _glass_blur(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    sigma, delta, iterations = GLASS_BLUR[s]
    sigma *= scale
    delta = max(1, int(round(delta * scale)))
    b, t, c, h, w = x.shape
    k = gaussian_kernel1d(sigma).to(x.device)
    frames = _conv_separable(_frames(x), k, "replicate").clamp(0, 1)
    # ImageNet-C stores the first blur as uint8 (truncating), so the quantisation is part of the corruption.
    frames = torch.floor(frames * 255) / 255
    # Pixels (h, w) with delta < h <= H - delta (same for w) move by an offset in [-delta, delta).
    # Frames no wider than 2 * delta have no such pixels (torch.arange refuses an empty descending range).
    inner_h = torch.arange(delta + 1, max(delta + 1, h - delta + 1), device=x.device)
    inner_w = torch.arange(delta + 1, max(delta + 1, w - delta + 1), device=x.device)
    if inner_h.numel() and inner_w.numel():
        inner_h = inner_h[inner_h < h]
        inner_w = inner_w[inner_w < w]
        frames = frames.view(b, t, c, h, w)
        n_pat = 1 if share else t
        for _ in range(iterations):
            dy = rng.randint(-delta, delta, b, n_pat, inner_h.numel(), inner_w.numel())
            dx = rng.randint(-delta, delta, b, n_pat, inner_h.numel(), inner_w.numel())
            dy, dx = _expand_pattern(dy, t), _expand_pattern(dx, t)
            src_h = (inner_h.view(1, 1, -1, 1) + dy).clamp(0, h - 1)
            src_w = (inner_w.view(1, 1, 1, -1) + dx).clamp(0, w - 1)
            flat_src = (src_h * w + src_w).reshape(b, t, 1, -1).expand(b, t, c, -1)
            values = frames.reshape(b, t, c, h * w).gather(3, flat_src)
            frames = frames.clone()
            frames[:, :, :, inner_h[0] : inner_h[-1] + 1, inner_w[0] : inner_w[-1] + 1] = values.view(
                b, t, c, inner_h.numel(), inner_w.numel()
            )
        frames = frames.reshape(b * t, c, h, w)
    return _conv_separable(frames, k, "replicate").view_as(x)


def _defocus_blur(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    radius, alias = DEFOCUS_BLUR[s]
    kernel = disk_kernel(radius * scale, alias * scale).to(x.device)
    return _conv2d_same(_frames(x), kernel, "reflect101").view_as(x)


def _motion_blur(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    radius, sigma = MOTION_BLUR[s]
    radius = max(1, int(round(radius * scale)))
    sigma = sigma * scale
    b, t = x.shape[:2]
    angles = _expand_pattern(rng.uniform(-45, 45, b, 1 if share else t), t).reshape(-1).tolist()
    return _motion_blur_frames(_frames(x), radius, sigma, angles).view_as(x)


def _zoom_factors(stop: float, step: float) -> list[float]:
    return [float(z) for z in np.arange(1, stop, step)]


def _zoom_blur(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    frames = _frames(x)
    zooms = _zoom_factors(*ZOOM_BLUR[s])
    out = frames.clone()
    for z in zooms:
        out = out + clipped_zoom(frames, z)
    return (out / (len(zooms) + 1)).view_as(x)


def _snow(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    loc, sd, zoom, thresh, radius, sigma, blend = SNOW[s]
    radius = max(1, int(round(radius * scale)))
    sigma = sigma * scale
    b, t, c, h, w = x.shape
    n_pat = 1 if share else t
    layer = loc + sd * rng.randn(b * n_pat, 1, h, w).to(torch.float32)
    layer = clipped_zoom(layer, zoom)
    layer = torch.where(layer < thresh, torch.zeros_like(layer), layer).clamp(0, 1)
    angles = rng.uniform(-135, -45, b * n_pat).tolist()
    layer = _motion_blur_frames(layer, radius, sigma, angles)
    layer = torch.round(layer * 255) / 255
    layer = _expand_pattern(layer.view(b, n_pat, 1, h, w), t).to(x.dtype)
    base = blend * x + (1 - blend) * torch.maximum(x, _gray(x) * 1.5 + 0.5)
    return base + layer + layer.flip(-1, -2)


def _fog(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    strength, decay = FOG[s]
    b, t, c, h, w = x.shape
    mapsize = max(2, 1 << (max(h, w) - 1).bit_length())
    n_pat = 1 if share else t
    plasma = plasma_fractal(b * n_pat, mapsize, decay, rng)[:, :h, :w].to(x.dtype)
    plasma = _expand_pattern(plasma.view(b, n_pat, 1, h, w), t)
    max_val = x.amax(dim=(2, 3, 4), keepdim=True)
    return (x + strength * plasma) * max_val / (max_val + strength)


def _brightness(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    hsv = rgb_to_hsv(x)
    h, sat, v = hsv.unbind(-3)
    return hsv_to_rgb(torch.stack((h, sat, (v + BRIGHTNESS[s]).clamp(0, 1)), dim=-3))


def _scale_contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale each frame's channels around their spatial means by ``factor``."""
    means = x.mean(dim=(-2, -1), keepdim=True)
    return (x - means) * factor + means


def _contrast(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    return _scale_contrast(x, CONTRAST[s])


def _minic_contrast(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    return _scale_contrast(x, MINIC_CONTRAST[s])


def _saturate(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    mul, add = SATURATE[s]
    h, sat, v = rgb_to_hsv(x).unbind(-3)
    return hsv_to_rgb(torch.stack((h, (sat * mul + add).clamp(0, 1), v), dim=-3))


def _jpeg(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    quality = JPEG_QUALITY[s]
    frames = (_frames(x).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as img:
            out[i] = np.asarray(img.convert("RGB"))
    result = torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).to(x.dtype) / 255
    return result.reshape(x.shape)


def _pixelate(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    h, w = x.shape[-2:]
    c = PIXELATE[s]
    small = (max(1, int(h * c)), max(1, int(w * c)))
    frames = F.interpolate(_frames(x), size=small, mode="area")
    return F.interpolate(frames, size=(h, w), mode="nearest-exact").view_as(x)


def _bilinear_sample(img: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, mode: str) -> torch.Tensor:
    """Sample ``img`` ``(N, C, H, W)`` at float pixel coordinates ``ys, xs`` ``(N, H, W)`` (order-1 spline,
    out-of-range neighbours mapped by ``mode``)."""
    n, c, h, w = img.shape
    y0, x0 = torch.floor(ys), torch.floor(xs)
    wy, wx = (ys - y0).to(img.dtype), (xs - x0).to(img.dtype)
    y0, x0 = y0.long(), x0.long()
    flat = img.reshape(n, c, h * w)
    out = torch.zeros_like(img)
    for oy, ox, weight in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx), (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yy = _map_index(y0 + oy, h, mode)
        xx = _map_index(x0 + ox, w, mode)
        idx = (yy * w + xx).view(n, 1, h * w).expand(n, c, h * w)
        out = out + weight[:, None] * flat.gather(2, idx).view(n, c, h, w)
    return out


def _elastic(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    alpha = ELASTIC_ALPHA[s]
    b, t, c, h, w = x.shape
    n_pat = 1 if share else t
    max_d = h * 0.005
    fields = rng.uniform(-max_d, max_d, b * n_pat * 2, 1, h, w).to(torch.float64)
    # scipy gaussian (sigma per axis = 0.01 of the side, truncate 3, mode "reflect").
    ky = gaussian_kernel1d(0.01 * h, truncate=3.0).to(x.device)
    kx = gaussian_kernel1d(0.01 * w, truncate=3.0).to(x.device)
    ry, rx = ky.numel() // 2, kx.numel() // 2
    fields = F.conv2d(_pad2d(fields, ry, 0, "symmetric"), ky.view(1, 1, -1, 1))
    fields = F.conv2d(_pad2d(fields, 0, rx, "symmetric"), kx.view(1, 1, 1, -1)) * alpha
    dy, dx = fields.view(b, n_pat, 2, h, w).unbind(2)
    dy, dx = _expand_pattern(dy, t).reshape(b * t, h, w), _expand_pattern(dx, t).reshape(b * t, h, w)
    gy, gx = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=torch.float64),
        torch.arange(w, device=x.device, dtype=torch.float64),
        indexing="ij",
    )
    return _bilinear_sample(_frames(x), gy + dy, gx + dx, "symmetric").view_as(x)


def _reversed(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    return x.flip(1)


def _take_frames(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[b, t] = x[b, index[b, t]]`` for ``index`` ``(B, T)``."""
    b, t = index.shape
    return x.gather(1, index.view(b, t, 1, 1, 1).expand(b, t, *x.shape[2:]))


def _shuffled(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    b, t = x.shape[:2]
    seg = max(2, int(round(SHUFFLE_FRACTION[s] * t)))
    index = torch.empty(b, t, dtype=torch.long)
    for i in range(b):
        for start in range(0, t, seg):
            n = min(seg, t - start)
            index[i, start : start + n] = start + rng.randperm(n).cpu()
    return _take_frames(x, index.to(x.device))


def _frozen_frames(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    b, t = x.shape[:2]
    k = int(round(FREEZE_FRACTION[s] * (t - 1)))
    index = torch.arange(t).repeat(b, 1)
    for i in range(b):
        if k:
            frozen = 1 + rng.randperm(t - 1).cpu()[:k]
            keep = torch.ones(t, dtype=torch.bool)
            keep[frozen] = False
            # A frozen frame shows the latest frame that is not frozen.
            shown = torch.where(keep, torch.arange(t), torch.zeros(t, dtype=torch.long))
            index[i] = torch.cummax(shown, dim=0).values
    return _take_frames(x, index.to(x.device))


def _frame_rate(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    b, t = x.shape[:2]
    k = FRAME_RATE_FACTOR[s]
    index = (torch.arange(t) // k * k).repeat(b, 1)
    return _take_frames(x, index.to(x.device))


def _minic_motion_blur(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    c = MINIC_MOTION_FRAMES[s]
    t = x.shape[1]
    # The benchmark's window [i - c, i + c) is asymmetric; repeating the edge frames keeps T frames.
    out = torch.zeros_like(x)
    for offset in range(-c, c):
        index = (torch.arange(t) + offset).clamp(0, t - 1).to(x.device)
        out = out + x.index_select(1, index)
    return out / (2 * c)


def minic_frame_index(num_frames: int, fps: int, source_fps: int = MINIC_SOURCE_FPS) -> torch.Tensor:
    """Which frame each of ``num_frames`` frames at ``source_fps`` shows after re-timing to ``fps``: frame i
    (time i / source_fps) shows low-rate frame ``k = floor(i fps / source_fps)``, which holds the source frame
    nearest to time k / fps (FFmpeg's ``fps`` filter rounds to the nearest frame). ``(num_frames,)`` long."""
    k = torch.arange(num_frames) * fps // source_fps
    return (2 * k * source_fps + fps) // (2 * fps)


def _minic_frame_rate(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    b, t = x.shape[:2]
    return _take_frames(x, minic_frame_index(t, MINIC_FPS[s]).repeat(b, 1).to(x.device))


def rain_mask(n_frames: int, h: int, w: int, n_drops: int, length: int, rng: _Rng) -> torch.Tensor:
    """``(n_frames, 1, h, w)`` masks in {0, 1} of ``n_drops`` one-pixel rain streaks per frame: a streak starts at
    a random ``(x, y)`` (y leaves room for the length where the frame allows) and runs ``length`` rows down,
    one column to the left from its middle row on (the line from (x, y) to (x - 1, y + length))."""
    xs = rng.randint(0, w, n_frames, n_drops, 1)
    ys = rng.randint(0, max(1, h - length), n_frames, n_drops, 1)
    k = torch.arange(length + 1, device=xs.device)
    rows = ys + k
    cols = xs - (2 * k >= length).long()
    inside = (rows < h) & (cols >= 0)
    frame = torch.arange(n_frames, device=xs.device).view(-1, 1, 1).expand_as(rows)
    mask = torch.zeros(n_frames, h * w, device=xs.device)
    flat = (rows * w + cols)[inside]
    mask[frame[inside], flat] = 1.0
    return mask.view(n_frames, 1, h, w)


def _rain(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
    area_per_drop, length, darken = RAIN[s]
    frames = _frames(x)
    n, _, h, w = frames.shape
    length = max(1, int(round(length * scale)))
    # At least one drop, so that small frames still get rain (the benchmark's frames are 224 px: 65-125 drops).
    mask = rain_mask(n, h, w, max(1, (h * w) // area_per_drop), length, rng).to(x.dtype) * RAIN_GREY
    mean = frames.mean(dim=(1, 2, 3), keepdim=True)
    wet = frames + mask * (1 - frames) * (1 - mean)
    blurred = _conv2d_same(wet, torch.full((3, 3), 1 / 9, dtype=x.dtype, device=x.device), "reflect101")
    out = blurred * mask + frames * (1 - mask)
    return _scale_contrast(out.clamp(0, 1), darken).view_as(x)


# name -> (encoder, CRF per severity, damage per severity or None)
_STREAMS: dict[str, tuple[str, Sequence[int], str | None]] = {
    "h264_crf": ("libx264", H264_CRF, None),
    "h265_crf": ("libx265", H265_CRF, None),
    "bit_error": ("libx264", (TRANSPORT_CRF,) * 5, "bit_error"),
    "packet_loss": ("libx264", (TRANSPORT_CRF,) * 5, "packet_loss"),
}


def _stream_clip(clip: torch.Tensor, name: str, s: int, seed: int) -> torch.Tensor | None:
    """Encode one clip ``(T, 3, H, W)``, damage its stream as ``name`` says at severity index ``s``, decode it
    (:mod:`videotaf.analysis.codec`); ``None`` when nothing decodes."""
    encoder, crfs, damage = _STREAMS[name]
    t, _, h, w = clip.shape
    frames = codec.clip_to_frames(clip)
    data = codec.encode_frames(frames, encoder, crfs[s])
    gen = np.random.default_rng(seed)
    if damage == "bit_error":
        data = codec.flip_bytes(data, BIT_ERROR_RATE[s], gen)
    elif damage == "packet_loss":
        data = codec.drop_packets(data, PACKET_LOSS[s], gen)
    decoded = codec.decode_stream(data, encoder, t, frames.shape[1], frames.shape[2])
    return None if decoded is None else codec.frames_to_clip(decoded, h, w, clip)


def _stream_seeds(rng: _Rng, n: int) -> list[int]:
    """One seed per clip for the damage of its stream, drawn from the corruption's generator."""
    return [int(v) for v in rng.randint(0, 2**62, n).cpu()]


def _stream_fn(name: str) -> _Fn:
    def fn(x: torch.Tensor, s: int, rng: _Rng, scale: float, share: bool) -> torch.Tensor:
        out = []
        for clip, seed in zip(x, _stream_seeds(rng, x.shape[0])):
            result = _stream_clip(clip, name, s, seed)
            out.append(torch.zeros_like(clip) if result is None else result)
        return torch.stack(out)

    return fn


# ----------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Corruption:
    """One registered corruption.

    ``pattern``: "frame" (new random pattern per frame), "clip" (one per clip) or "deterministic";
    ``shareable``: whether ``share_across_frames`` may override ``pattern``; ``imagenet_c``: part of ImageNet-C;
    ``stream``: goes through an encoded stream (slow, per clip; a clip may not decode, see :func:`corrupt_clip`).
    """

    name: str
    family: str
    pattern: str
    shareable: bool
    imagenet_c: bool
    fn: _Fn
    stream: bool = False

    def __call__(
        self,
        clips: torch.Tensor,
        severity: int,
        generator: torch.Generator | None = None,
        *,
        spatial_scale: float | None = 1.0,
        share_across_frames: bool | None = None,
    ) -> torch.Tensor:
        return corrupt(
            clips,
            self.name,
            severity,
            generator,
            spatial_scale=spatial_scale,
            share_across_frames=share_across_frames,
        )


def _entries() -> list[Corruption]:
    c = Corruption
    return [
        c("gaussian_noise", "noise", "frame", True, True, _gaussian_noise),
        c("shot_noise", "noise", "frame", False, True, _shot_noise),
        c("impulse_noise", "noise", "frame", True, True, _impulse_noise),
        c("speckle_noise", "noise", "frame", True, True, _speckle_noise),
        c("gaussian_blur", "blur", "deterministic", False, True, _gaussian_blur),
        c("glass_blur", "blur", "frame", True, True, _glass_blur),
        c("defocus_blur", "blur", "deterministic", False, True, _defocus_blur),
        c("motion_blur", "blur", "clip", True, True, _motion_blur),
        c("zoom_blur", "blur", "deterministic", False, True, _zoom_blur),
        c("snow", "weather", "frame", True, True, _snow),
        c("fog", "weather", "clip", True, True, _fog),
        c("brightness", "weather", "deterministic", False, True, _brightness),
        c("contrast", "digital", "deterministic", False, True, _contrast),
        c("saturate", "digital", "deterministic", False, True, _saturate),
        c("jpeg_compression", "digital", "deterministic", False, True, _jpeg),
        c("pixelate", "digital", "deterministic", False, True, _pixelate),
        c("elastic_transform", "digital", "clip", True, True, _elastic),
        c("reversed", "temporal", "deterministic", False, False, _reversed),
        c("shuffled", "temporal", "clip", False, False, _shuffled),
        c("frozen_frames", "temporal", "clip", False, False, _frozen_frames),
        c("frame_rate", "temporal", "deterministic", False, False, _frame_rate),
        c("minic_motion_blur", "blur", "deterministic", False, False, _minic_motion_blur),
        c("rain", "weather", "frame", False, False, _rain),
        c("minic_contrast", "digital", "deterministic", False, False, _minic_contrast),
        c("bit_error", "transport", "clip", False, False, _stream_fn("bit_error"), True),
        c("packet_loss", "transport", "clip", False, False, _stream_fn("packet_loss"), True),
        c("h265_crf", "codec", "deterministic", False, False, _stream_fn("h265_crf"), True),
        c("h264_crf", "codec", "deterministic", False, False, _stream_fn("h264_crf"), True),
        c("minic_frame_rate", "temporal", "deterministic", False, False, _minic_frame_rate),
    ]


CORRUPTIONS: dict[str, Corruption] = {entry.name: entry for entry in _entries()}
PAPER_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "impulse_noise",
    "speckle_noise",
    "gaussian_blur",
    "defocus_blur",
    "zoom_blur",
    "snow",
    "brightness",
)
IMAGENET_C_CORRUPTIONS: tuple[str, ...] = tuple(n for n, e in CORRUPTIONS.items() if e.imagenet_c)
TEMPORAL_CORRUPTIONS: tuple[str, ...] = ("reversed", "shuffled", "frozen_frames", "frame_rate")
MINI_C_CORRUPTIONS: tuple[str, ...] = (
    "shot_noise",
    "minic_motion_blur",
    "rain",
    "minic_contrast",
    "brightness",
    "saturate",
    "fog",
    "bit_error",
    "packet_loss",
    "h265_crf",
    "h264_crf",
    "minic_frame_rate",
)


def available() -> list[str]:
    """Names of every registered corruption."""
    return list(CORRUPTIONS)


def _check_clips(clips: torch.Tensor) -> None:
    if not isinstance(clips, torch.Tensor):
        raise TypeError(f"corrupt: clips must be a torch.Tensor, got {type(clips).__name__}")
    if clips.dim() != 5 or clips.shape[2] != 3:
        raise ValueError(f"corrupt: clips must have shape (B, T, 3, H, W), got {tuple(clips.shape)}")
    if not clips.is_floating_point():
        raise ValueError(f"corrupt: clips must be float in [0, 1], got dtype {clips.dtype}")
    if clips.numel():
        lo, hi = float(clips.min()), float(clips.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(f"corrupt: clips must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


def _check_call(clips: torch.Tensor, name: str, severity: int) -> Corruption:
    """The registry entry of ``name`` after checking ``severity`` and ``clips``; ValueError naming the problem."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise ValueError(f"corruption {name!r}: severity must be an integer in 1..5, got {severity!r}")
    _check_clips(clips)
    return CORRUPTIONS[name]


def corrupt_clip(
    clip: torch.Tensor,
    name: str,
    severity: int,
    generator: torch.Generator | None = None,
    *,
    spatial_scale: float | None = 1.0,
) -> torch.Tensor | None:
    """Corrupt one clip ``(T, 3, H, W)`` in [0, 1]; ``None`` when a stream corruption (``bit_error``,
    ``packet_loss``, ``h264_crf``, ``h265_crf``) leaves nothing FFmpeg can decode.

    Same result as ``corrupt(clip[None], ...)[0]`` with the same generator state, except that :func:`corrupt`
    shows an undecodable clip as black frames. Mini Kinetics-C / Mini SSv2-C (Yi et al. 2021) for the stream
    corruptions; see :func:`corrupt` for the rest.
    """
    if not isinstance(clip, torch.Tensor) or clip.dim() != 4:
        raise ValueError(f"corrupt_clip: clip must have shape (T, 3, H, W), got {getattr(clip, 'shape', clip)!r}")
    entry = _check_call(clip[None], name, severity)
    if not entry.stream:
        return corrupt(clip[None], name, severity, generator, spatial_scale=spatial_scale)[0]
    seed = _stream_seeds(_Rng(generator, clip.device), 1)[0]
    out = _stream_clip(clip, name, int(severity) - 1, seed)
    return None if out is None else out.clamp(0, 1).contiguous()


def corrupt(
    clips: torch.Tensor,
    name: str,
    severity: int,
    generator: torch.Generator | None = None,
    *,
    spatial_scale: float | None = 1.0,
    share_across_frames: bool | None = None,
) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1..5) to ``clips`` ``(B, T, 3, H, W)`` in [0, 1].

    Section 4.5 / Table 3 of the paper (ImageNet-C corruptions, Hendrycks & Dietterich 2019). ``generator``
    seeds every random draw (``None``: torch's global RNG). ``spatial_scale`` multiplies the pixel-valued
    parameters (``None``: ``min(H, W) / 224``; default 1.0 keeps ImageNet-C's literal values).
    ``share_across_frames`` overrides the corruption's default pattern (see the module table) where allowed.
    Returns a new tensor of the same shape, dtype and device, clamped to [0, 1].
    """
    entry = _check_call(clips, name, severity)
    if share_across_frames is not None and not entry.shareable and entry.pattern != "deterministic":
        raise ValueError(
            f"corruption {name!r} has a fixed '{entry.pattern}' pattern; share_across_frames is not supported"
        )
    share = entry.pattern == "clip" if share_across_frames is None else bool(share_across_frames)
    h, w = clips.shape[-2:]
    scale = min(h, w) / REFERENCE_SIZE if spatial_scale is None else float(spatial_scale)
    if scale <= 0:
        raise ValueError(f"corrupt: spatial_scale must be positive, got {spatial_scale!r}")
    work = clips if clips.dtype in (torch.float32, torch.float64) else clips.float()
    if clips.numel() == 0:
        return clips.clone()
    rng = _Rng(generator, clips.device)
    out = entry.fn(work, int(severity) - 1, rng, scale, share)
    return out.clamp(0, 1).to(clips.dtype).contiguous()
