"""Per-frame CAM maps from token sequences (Eq. 2 on video transformers): the fold, its exact token order per model
(a planted input patch lands at its frame and position), and that folding changes nothing downstream."""

from __future__ import annotations

import pytest
import torch

# Needs the hf extra (CI installs .[test,hf]); deliberately no importorskip: these tests must not skip.
from tiny_transformers import ALL_KINDS, FRAMES, SIZE, cam_grid, expected_position, make_local, tiny
from videotaf.cam import FeatureTap, frame_maps, temporal_gradcam
from videotaf.models.tokens import TokenFold, maps_to_tokens, tokens_to_maps


@pytest.mark.parametrize("order", ["thw", "hwt"])
@pytest.mark.parametrize("prefix", [0, 1, 2])
def test_fold_places_each_token_and_round_trips(order, prefix):
    b, c, (t, h, w) = 2, 3, (2, 3, 4)
    tokens = torch.randn(b, prefix + t * h * w, c)
    head, maps = tokens_to_maps(tokens, (t, h, w), prefix, order)
    assert head.shape == (b, prefix, c) and maps.shape == (b, c, t, h, w)
    for ti, yi, xi in [(0, 0, 0), (1, 2, 3), (0, 2, 1), (1, 0, 3)]:
        index = ti * h * w + yi * w + xi if order == "thw" else (yi * w + xi) * t + ti
        assert torch.equal(maps[:, :, ti, yi, xi], tokens[:, prefix + index])
    assert torch.equal(maps_to_tokens(head, maps, order), tokens)


def test_fold_is_an_identity_with_gradients_through_the_tap():
    fold = TokenFold((2, 2, 2), prefix=1, order="hwt")
    tokens = torch.randn(3, 9, 4, requires_grad=True)
    tap = FeatureTap()
    with tap.attached(fold.tap):
        out = fold(tokens)
    maps = tap.pop()
    assert torch.equal(out, tokens) and maps.shape == (3, 4, 2, 2, 2)
    (g_maps,) = torch.autograd.grad((out * torch.arange(9.0)[None, :, None]).sum(), maps, retain_graph=True)
    (g_tokens,) = torch.autograd.grad((out * torch.arange(9.0)[None, :, None]).sum(), tokens)
    _, expected = tokens_to_maps(g_tokens, (2, 2, 2), 1, "hwt")
    assert torch.equal(g_maps, expected)  # the gradient Eq. (2) weights by is the patch tokens' own


def test_fold_rejects_a_wrong_token_count():
    with pytest.raises(ValueError, match=r"1 \+ 2\*2\*2 = 9"):
        tokens_to_maps(torch.zeros(1, 8, 4), (2, 2, 2), prefix=1)
    with pytest.raises(ValueError, match="order"):
        TokenFold((1, 1, 1), order="tchw")


def _planted_maps(model, positions):
    """Clips equal to the normalisation mean (zero after it) except one brighter pixel per clip; the maps of the
    CAM layer, folded to (B, T', C, h, w)."""
    mean = model.normalize.mean
    clips = mean.expand(len(positions), FRAMES, 3, SIZE, SIZE).clone()
    for i, (f, y, x) in enumerate(positions):
        clips[i, f, :, y, x] += 0.4
    tap = FeatureTap()
    with torch.no_grad(), tap.attached(model.cam_layer):
        model(clips)
    return frame_maps(tap.pop(), len(positions))


# (frame, y, x) of the planted pixel; MViT's overlapping patch embedding (kernel 3x7x7, stride 2x4x4) and pooling
# (kernel 3, stride 2) put a pixel in one patch only at even frames and multiples of 8 px.
PLANTS = {
    "mvit": [(0, 0, 0), (2, 24, 8), (2, 8, 24), (0, 16, 0)],
    "default": [(0, 0, 0), (3, 31, 17), (2, 9, 24), (1, 16, 3)],
}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_planted_patch_lands_at_its_frame_and_position(kind):
    torch.manual_seed(0)
    model = make_local(tiny(kind, layers=2).eval())
    positions = PLANTS.get(kind, PLANTS["default"])
    maps = _planted_maps(model, positions)
    assert maps.shape[1:] == (cam_grid(kind)[0], maps.shape[2], *cam_grid(kind)[1:])
    for i, pos in enumerate(positions):
        energy = maps[i].abs().sum(dim=1)  # (T', h, w)
        hits = [tuple(p) for p in energy.nonzero().tolist()]
        assert hits == [expected_position(kind, *pos)], (kind, pos, hits)


def test_timesformer_token_order_is_not_frame_major():
    # Negative control: read with the frame-major order of the other models, TimeSformer's planted patches land
    # elsewhere, so the test above tells the orders apart.
    torch.manual_seed(0)
    model = make_local(tiny("timesformer", layers=1).eval())
    model.fold.order = "thw"
    maps = _planted_maps(model, [(3, 31, 17)])
    hits = [tuple(p) for p in maps[0].abs().sum(dim=1).nonzero().tolist()]
    assert hits != [expected_position("timesformer", 3, 31, 17)]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_per_frame_cams_of_random_transformers(kind):
    torch.manual_seed(0)
    model = tiny(kind, layers=2).eval()
    clips = torch.rand(2, FRAMES, 3, SIZE, SIZE)
    res = temporal_gradcam(model, clips, torch.tensor([1, 2]))
    assert res.cams.shape == (2, *cam_grid(kind))
    # Every frame gets evidence: the gradient reaches the patch tokens (not only the class token).
    assert (res.cams.abs().flatten(2).sum(2) > 0).all()
    assert torch.allclose(res.frame_scores.sum(1), torch.ones(2))
