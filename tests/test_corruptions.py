"""Corruptions (Sec. 4.5 / Table 3): ImageNet-C formulas recomputed independently with numpy / colorsys, noise
statistics per severity, seeding, pattern sharing, temporal perturbations, shapes and ranges."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from videotaf.analysis.corruptions import (
    CORRUPTIONS,
    PAPER_CORRUPTIONS,
    SEVERITIES,
    TEMPORAL_CORRUPTIONS,
    corrupt,
)

RNG = np.random.default_rng(1234)
IMG = RNG.random((21, 26, 3))  # H, W, C: odd/even sizes on purpose


def as_clip(img: np.ndarray, t: int = 1) -> torch.Tensor:
    """(H, W, 3) numpy -> (1, t, 3, H, W) float64 tensor."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None, None]
    return x.repeat(1, t, 1, 1, 1).double()


def frame0(x: torch.Tensor) -> np.ndarray:
    return x[0, 0].permute(1, 2, 0).numpy()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------- references (numpy)
def np_correlate2d(img: np.ndarray, kernel: np.ndarray, pad_mode: str) -> np.ndarray:
    """Direct 2-D correlation of each channel, output the input size; ``pad_mode`` as np.pad."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    out = np.zeros_like(img)
    for c in range(img.shape[2]):
        padded = np.pad(img[:, :, c], ((ph, ph), (pw, pw)), mode=pad_mode)
        for dy in range(kh):
            for dx in range(kw):
                out[:, :, c] += kernel[dy, dx] * padded[dy : dy + img.shape[0], dx : dx + img.shape[1]]
    return out


def np_gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """skimage.filters.gaussian(sigma, multichannel, mode='nearest', truncate=4)."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * x**2 / sigma**2)
    k /= k.sum()
    return np_correlate2d(img, np.outer(k, k), "edge")


def np_defocus_kernel(radius: float, alias_blur: float) -> np.ndarray:
    if radius <= 8:
        coords, ksize = np.arange(-8, 9), 3
    else:
        coords, ksize = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(coords, coords)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = np.exp(-((np.arange(ksize) - (ksize - 1) / 2) ** 2) / (2 * alias_blur**2))
    g /= g.sum()
    # cv2.GaussianBlur with its default BORDER_REFLECT_101 == np.pad mode "reflect".
    return np_correlate2d(disk[:, :, None], np.outer(g, g), "reflect")[:, :, 0]


def np_linear_zoom(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """scipy.ndimage.zoom(order=1) grid: output pixel i samples input i * (n_in - 1) / (n_out - 1)."""

    def axis(a: np.ndarray, n_out: int, ax: int) -> np.ndarray:
        n_in = a.shape[ax]
        pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
        lo = np.floor(pos).astype(int).clip(0, n_in - 1)
        hi = (lo + 1).clip(0, n_in - 1)
        w = pos - lo
        shape = [1] * a.ndim
        shape[ax] = n_out
        w = w.reshape(shape)
        return np.take(a, lo, axis=ax) * (1 - w) + np.take(a, hi, axis=ax) * w

    return axis(axis(img, out_h, 0), out_w, 1)


def np_clipped_zoom(img: np.ndarray, z: float) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / z)), int(np.ceil(w / z))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = img[top : top + ch, left : left + cw]
    out = np_linear_zoom(crop, int(round(ch * z)), int(round(cw * z)))
    th, tw = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return out[th : th + h, tw : tw + w]


def np_hsv_map(img: np.ndarray, fn) -> np.ndarray:
    out = np.empty_like(img)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            h, s, v = colorsys.rgb_to_hsv(*img[i, j])
            out[i, j] = colorsys.hsv_to_rgb(*fn(h, s, v))
    return out


# ----------------------------------------------------------------------------------------- deterministic
@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_blur_matches_imagenet_c(severity: int) -> None:
    sigma = [1, 2, 3, 4, 6][severity - 1]
    out = frame0(corrupt(as_clip(IMG), "gaussian_blur", severity))
    np.testing.assert_allclose(out, np.clip(np_gaussian_blur(IMG, sigma), 0, 1), atol=1e-10)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_defocus_blur_matches_imagenet_c(severity: int) -> None:
    radius, alias = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1]
    img = RNG.random((25, 24, 3))  # larger than the 21x21 kernel of severity 5
    ref = np.clip(np_correlate2d(img, np_defocus_kernel(radius, alias), "reflect"), 0, 1)
    np.testing.assert_allclose(frame0(corrupt(as_clip(img), "defocus_blur", severity)), ref, atol=1e-10)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_zoom_blur_matches_imagenet_c(severity: int) -> None:
    stop, step = [(1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)][severity - 1]
    zooms = np.arange(1, stop, step)
    acc = IMG.copy()
    for z in zooms:
        acc = acc + np_clipped_zoom(IMG, z)
    ref = np.clip(acc / (len(zooms) + 1), 0, 1)
    np.testing.assert_allclose(frame0(corrupt(as_clip(IMG), "zoom_blur", severity)), ref, atol=1e-10)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_brightness_matches_hsv_formula(severity: int) -> None:
    c = [0.1, 0.2, 0.3, 0.4, 0.5][severity - 1]
    img = IMG[:6, :7]
    ref = np_hsv_map(img, lambda h, s, v: (h, s, min(v + c, 1.0)))
    np.testing.assert_allclose(frame0(corrupt(as_clip(img), "brightness", severity)), ref, atol=1e-10)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_saturate_and_contrast_formulas(severity: int) -> None:
    img = IMG[:6, :7]
    mul, add = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][severity - 1]
    ref = np_hsv_map(img, lambda h, s, v: (h, min(max(s * mul + add, 0.0), 1.0), v))
    np.testing.assert_allclose(frame0(corrupt(as_clip(img), "saturate", severity)), ref, atol=1e-10)
    c = [0.4, 0.3, 0.2, 0.1, 0.05][severity - 1]
    means = img.mean(axis=(0, 1), keepdims=True)
    np.testing.assert_allclose(
        frame0(corrupt(as_clip(img), "contrast", severity)), np.clip((img - means) * c + means, 0, 1), atol=1e-12
    )


def test_pixelate_integer_factor_is_block_mean() -> None:
    img = RNG.random((20, 20, 3))
    out = frame0(corrupt(as_clip(img), "pixelate", 2))  # c = 0.5 -> 10x10 blocks of 2x2
    blocks = img.reshape(10, 2, 10, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, np.repeat(np.repeat(blocks, 2, 0), 2, 1), atol=1e-12)


def test_jpeg_gets_worse_with_severity() -> None:
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    img = np.stack([np.sin(6 * xx) * 0.5 + 0.5, yy, (xx * yy) ** 0.5], -1)
    errs = [np.abs(frame0(corrupt(as_clip(img), "jpeg_compression", s)) - img).mean() for s in (1, 5)]
    assert 0 < errs[0] < errs[1]


def test_spatial_scale_scales_blur_sigma() -> None:
    half = frame0(corrupt(as_clip(IMG), "gaussian_blur", 4, spatial_scale=0.5))  # sigma 4 -> 2
    np.testing.assert_allclose(half, np.clip(np_gaussian_blur(IMG, 2.0), 0, 1), atol=1e-10)
    img = RNG.random((112, 112, 3))
    auto = corrupt(as_clip(img), "gaussian_blur", 2, spatial_scale=None)  # 112 / 224 -> sigma 1
    ref = corrupt(as_clip(img), "gaussian_blur", 1)
    torch.testing.assert_close(auto, ref)


# ----------------------------------------------------------------------------------------- noise statistics
def clipped_normal_std(mean: float, scale: float) -> float:
    """std of clip(mean + scale Z, 0, 1) - mean, by numerical integration on a fine grid."""
    z = np.linspace(-8, 8, 200_001)
    pdf = np.exp(-0.5 * z**2)
    pdf /= pdf.sum()
    v = np.clip(mean + scale * z, 0, 1) - mean
    m = (v * pdf).sum()
    return float(np.sqrt(((v - m) ** 2 * pdf).sum()))


GREY = torch.full((2, 4, 3, 48, 48), 0.5, dtype=torch.float64)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_noise_std_per_severity(severity: int) -> None:
    c = [0.08, 0.12, 0.18, 0.26, 0.38][severity - 1]
    d = corrupt(GREY, "gaussian_noise", severity, gen(severity)) - GREY
    assert float(d.std()) == pytest.approx(clipped_normal_std(0.5, c), rel=0.03)
    assert abs(float(d.mean())) < 0.01


@pytest.mark.parametrize("severity", SEVERITIES)
def test_speckle_noise_std_per_severity(severity: int) -> None:
    c = [0.15, 0.2, 0.35, 0.45, 0.6][severity - 1]
    d = corrupt(GREY, "speckle_noise", severity, gen(severity)) - GREY
    assert float(d.std()) == pytest.approx(clipped_normal_std(0.5, 0.5 * c), rel=0.03)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_impulse_noise_fraction_per_severity(severity: int) -> None:
    amount = [0.03, 0.06, 0.09, 0.17, 0.27][severity - 1]
    out = corrupt(GREY, "impulse_noise", severity, gen(severity))
    changed = out != GREY
    n = GREY.numel()
    tol = 5 * math.sqrt(amount * (1 - amount) / n)
    assert float(changed.double().mean()) == pytest.approx(amount, abs=tol)
    assert set(out[changed].unique().tolist()) <= {0.0, 1.0}
    assert float((out[changed] == 1).double().mean()) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_shot_noise_is_poisson_per_severity(severity: int) -> None:
    c = [60, 25, 12, 5, 3][severity - 1]
    dark = torch.full_like(GREY, 0.1)
    out = corrupt(dark, "shot_noise", severity, gen(severity))
    # k / c with k ~ Poisson(0.1 c): mean 0.1, std sqrt(0.1 / c); values on the 1/c grid.
    assert float(out.mean()) == pytest.approx(0.1, rel=0.03)
    assert float(out.std()) == pytest.approx(math.sqrt(0.1 / c), rel=0.03)
    k = out * c
    torch.testing.assert_close(k, k.round(), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------- seeding, patterns
# Stream corruptions have their own seeding tests (tests/test_minic.py): on clips this small a bit-error rate
# of 1e-4 per byte damages no byte for most seeds.
RANDOM = [n for n, e in CORRUPTIONS.items() if e.pattern != "deterministic" and not e.stream]
# The encoders behind the stream corruptions are not bit-for-bit repeatable on noise like this clip (see
# videotaf.analysis.codec); tests/test_minic.py checks them on smooth content.
DETERMINISTIC = [n for n, e in CORRUPTIONS.items() if e.pattern == "deterministic" and not e.stream]


@pytest.mark.parametrize("name", RANDOM)
def test_same_seed_same_output_different_seed_different(name: str) -> None:
    x = torch.rand(2, 8, 3, 20, 22, generator=gen(7))
    a = corrupt(x, name, 3, gen(1))
    b = corrupt(x, name, 3, gen(1))
    c = corrupt(x, name, 3, gen(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_ignore_the_generator(name: str) -> None:
    x = torch.rand(1, 3, 3, 20, 22, generator=gen(7))
    torch.testing.assert_close(corrupt(x, name, 3, gen(1)), corrupt(x, name, 3, gen(2)), rtol=0, atol=0)


def test_per_frame_and_per_clip_patterns() -> None:
    static = torch.rand(1, 1, 3, 24, 24, generator=gen(3)).repeat(2, 4, 1, 1, 1)  # same frame 4 times
    noisy = corrupt(static, "gaussian_noise", 2, gen(0))
    assert not torch.equal(noisy[:, 0], noisy[:, 1])  # new pattern per frame
    shared = corrupt(static, "gaussian_noise", 2, gen(0), share_across_frames=True)
    assert all(torch.equal(shared[:, 0], shared[:, t]) for t in range(4))
    assert not torch.equal(shared[0], shared[1])  # but one per clip
    for name in ("fog", "motion_blur", "elastic_transform"):  # clip patterns by default
        out = corrupt(static, name, 3, gen(0))
        assert all(torch.equal(out[:, 0], out[:, t]) for t in range(4)), name
    snow = corrupt(static, "snow", 3, gen(0))
    assert not torch.equal(snow[:, 0], snow[:, 1])
    with pytest.raises(ValueError, match="shot_noise"):
        corrupt(static, "shot_noise", 1, gen(0), share_across_frames=True)


# ----------------------------------------------------------------------------------------- temporal
def numbered_clip(b: int, t: int) -> torch.Tensor:
    """Frame t of clip b is constant (b * 10 + t) / 100: frames are identifiable."""
    v = (torch.arange(b)[:, None] * 10 + torch.arange(t)[None]) / 100
    return v.view(b, t, 1, 1, 1).expand(b, t, 3, 4, 5).clone()


def frame_ids(x: torch.Tensor) -> list[list[int]]:
    b = torch.arange(x.shape[0])[:, None] * 10
    return (x[:, :, 0, 0, 0] * 100).round().long().sub(b).tolist()


def test_reversed_and_frame_rate() -> None:
    x = numbered_clip(2, 8)
    assert frame_ids(corrupt(x, "reversed", 1)) == [list(range(7, -1, -1))] * 2
    assert frame_ids(corrupt(x, "frame_rate", 1)) == [[0, 0, 2, 2, 4, 4, 6, 6]] * 2  # k = 2
    assert frame_ids(corrupt(x, "frame_rate", 2)) == [[0, 0, 0, 3, 3, 3, 6, 6]] * 2  # k = 3


@pytest.mark.parametrize("severity", SEVERITIES)
def test_shuffled_permutes_within_segments(severity: int) -> None:
    x = numbered_clip(3, 8)
    seg = max(2, round([0.25, 0.375, 0.5, 0.75, 1.0][severity - 1] * 8))
    for ids in frame_ids(corrupt(x, "shuffled", severity, gen(severity))):
        for start in range(0, 8, seg):
            assert sorted(ids[start : start + seg]) == list(range(start, min(8, start + seg)))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_frozen_frames_count(severity: int) -> None:
    x = numbered_clip(3, 9)
    k = round([0.125, 0.25, 0.375, 0.5, 0.625][severity - 1] * 8)
    for ids in frame_ids(corrupt(x, "frozen_frames", severity, gen(severity))):
        assert ids[0] == 0
        assert sum(a == b for a, b in zip(ids, ids[1:])) == k  # each frozen frame repeats the previous one
        assert all(b == a or b == i + 1 for i, (a, b) in enumerate(zip(ids, ids[1:])))


# ----------------------------------------------------------------------------------------- shapes, ranges, errors
def test_registry_has_the_paper_set() -> None:
    assert set(PAPER_CORRUPTIONS) <= set(CORRUPTIONS)
    assert len(PAPER_CORRUPTIONS) == 8
    assert set(TEMPORAL_CORRUPTIONS) == {"reversed", "shuffled", "frozen_frames", "frame_rate"}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_corruption_keeps_shape_dtype_and_range(name: str) -> None:
    for t in (1, 3, 8):
        for dtype in (torch.float32, torch.float64):
            x = torch.rand(2, t, 3, 18, 23, generator=gen(t), dtype=dtype)
            for severity in SEVERITIES if t == 3 and dtype == torch.float32 else (5,):
                out = corrupt(x, name, severity, gen(0))
                assert out.shape == x.shape and out.dtype == x.dtype
                assert float(out.min()) >= 0 and float(out.max()) <= 1
                assert torch.isfinite(out).all()
    x = torch.rand(1, 2, 3, 16, 16)
    assert torch.equal(corrupt(x, name, 1, gen(0)).clamp(0, 1), corrupt(x, name, 1, gen(0)))


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(list(CORRUPTIONS)),
    severity=st.sampled_from(SEVERITIES),
    t=st.integers(1, 4),
    h=st.integers(4, 20),
    w=st.integers(4, 20),
    seed=st.integers(0, 2**31),
)
@example(name="glass_blur", severity=4, t=1, h=6, w=4, seed=0)  # narrower than 2 * delta: once crashed
@example(name="glass_blur", severity=5, t=2, h=4, w=20, seed=1)
def test_property_any_shape(name: str, severity: int, t: int, h: int, w: int, seed: int) -> None:
    x = torch.rand(1, t, 3, h, w, generator=gen(seed))
    out = corrupt(x, name, severity, gen(seed))
    assert out.shape == x.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_bad_input_errors() -> None:
    x = torch.rand(1, 2, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown corruption 'nope'"):
        corrupt(x, "nope", 1)
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match="severity"):
            corrupt(x, "gaussian_noise", bad)
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        corrupt(torch.rand(2, 3, 8, 8), "gaussian_noise", 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(x * 255, "gaussian_noise", 1)
    with pytest.raises(ValueError, match="float"):
        corrupt((x * 255).to(torch.uint8), "gaussian_noise", 1)
