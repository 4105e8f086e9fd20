"""Temporal attention metrics from per-frame Grad-CAM, and how TA and CE-based PGD move them.

The paper argues qualitatively (Figures 1, 3 and 6) that video models concentrate their temporal attention on a
few frames, that TA (Eq. 6) shifts that attention while CE-based PGD (Eq. 1) barely does, and that TAF-trained
models attend more evenly. These metrics measure that over a dataset. Everything starts from the per-frame share
``p`` ``(B, T')`` of the normalised CAM mass (Eq. 2-3, :func:`videotaf.cam.temporal_gradcam`), ``sum_t p_t = 1``:

- ``entropy``: ``-sum p log p / log T'`` in [0, 1]; 1 = uniform attention, 0 = all on one frame (1 when T' = 1).
- ``weakest_share``: the share of the ``n`` weakest frames (default ``n = max(1, T' // 2)``); ``n / T'`` when uniform.
- ``peak_share``: the largest frame share.
- under an attack ``p -> q``: ``l1 = sum |p - q|``, ``tv = l1 / 2`` (total variation, in [0, 1]),
  ``entropy_change = H(q) - H(p)`` (normalised), and ``nonkey_gain``: the share that the clean clip's weakest
  ``n`` frames (its non-key frames, Eq. 4) gain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from videotaf.attack import CrossEntropyAugmentation, TAOptions, TargetRule, TemporalAdversarialAugmentation
from videotaf.cam import Score, cam_layer_of, module_name, temporal_gradcam

__all__ = [
    "normalized_entropy",
    "weakest_share",
    "peak_share",
    "attention_metrics",
    "attention_shift",
    "analyze_attention",
    "default_num_weakest",
]


def _check(p: torch.Tensor) -> torch.Tensor:
    if p.dim() != 2 or p.shape[1] < 1:
        raise ValueError(f"per-frame attention must be (B, T') with T' >= 1, got {tuple(p.shape)}")
    return p.double()


def default_num_weakest(t: int) -> int:
    """The weaker half of the CAM frames: ``max(1, T' // 2)``."""
    return max(1, t // 2)


def normalized_entropy(p: torch.Tensor) -> torch.Tensor:
    """``(B, T') -> (B,)``: Shannon entropy of each row divided by ``log T'`` (1 for T' = 1); 0 log 0 = 0.

    Rows are renormalised to sum 1 first (negative entries are an error).
    """
    p = _check(p)
    if bool((p < 0).any()):
        raise ValueError("per-frame attention must be non-negative")
    p = p / p.sum(dim=1, keepdim=True).clamp_min(1e-300)
    t = p.shape[1]
    if t == 1:
        return torch.ones(p.shape[0], dtype=torch.float64)
    h = -(torch.where(p > 0, p * torch.log(p.clamp_min(1e-300)), torch.zeros_like(p))).sum(dim=1)
    return h / math.log(t)


def weakest_share(p: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """``(B, T') -> (B,)``: summed share of the ``n`` frames with the smallest share (the non-key frames of
    Eq. 4 when ``p`` comes from the normalised CAMs)."""
    p = _check(p)
    n = default_num_weakest(p.shape[1]) if n is None else int(n)
    if not 1 <= n <= p.shape[1]:
        raise ValueError(f"n must be in 1..{p.shape[1]}, got {n}")
    return torch.sort(p, dim=1, stable=True).values[:, :n].sum(dim=1)


def peak_share(p: torch.Tensor) -> torch.Tensor:
    """``(B, T') -> (B,)``: the largest frame share."""
    return _check(p).max(dim=1).values


def attention_metrics(p: torch.Tensor, n: int | None = None) -> dict[str, torch.Tensor]:
    """``{"entropy", "weakest_share", "peak_share"}``, each ``(B,)``, of per-frame attention ``p`` ``(B, T')``."""
    return {"entropy": normalized_entropy(p), "weakest_share": weakest_share(p, n), "peak_share": peak_share(p)}


def attention_shift(p: torch.Tensor, q: torch.Tensor, n: int | None = None) -> dict[str, torch.Tensor]:
    """How attention moved from ``p`` (clean) to ``q`` (attacked), both ``(B, T')``; each value ``(B,)``.

    ``l1 = sum |p - q|``, ``tv = l1 / 2``, ``entropy_change = H(q) - H(p)`` (normalised entropies),
    ``nonkey_gain = sum over the n weakest frames of p of (q - p)``.
    """
    p, q = _check(p), _check(q)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    n = default_num_weakest(p.shape[1]) if n is None else int(n)
    if not 1 <= n <= p.shape[1]:
        raise ValueError(f"n must be in 1..{p.shape[1]}, got {n}")
    l1 = (p - q).abs().sum(dim=1)
    idx = torch.sort(p, dim=1, stable=True).indices[:, :n]
    gain = (q.gather(1, idx) - p.gather(1, idx)).sum(dim=1)
    return {
        "l1": l1,
        "tv": l1 / 2,
        "entropy_change": normalized_entropy(q) - normalized_entropy(p),
        "nonkey_gain": gain,
    }


def _summary(values: list[torch.Tensor]) -> dict[str, float]:
    if not values:
        return {"mean": float("nan"), "std": float("nan")}
    v = torch.cat(values).double()
    std = float(v.std(unbiased=False)) if v.numel() > 1 else 0.0
    return {"mean": float(v.mean()), "std": std}


def analyze_attention(  # size: a public API; its keywords are the CLI's and the benchmarks' options
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    attacks: Mapping[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None,
    eps: float = 64 / 255,
    step_size: float = 32 / 255,
    steps: int = 1,
    num_weakest: int | None = None,
    cam_target: str = "pred",
    score: Score = "log_prob",
    seed: int = 0,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
    cam_layer: str | None = None,
    target_rule: TargetRule = "paper",
) -> dict[str, Any]:
    """Temporal attention metrics of ``model`` over ``batches`` and their change under attacks (Fig. 3, Sec. 3.2).

    Args:
        model: a :class:`~videotaf.models.base.VideoClassifier` (has ``cam_layer``); run in eval mode.
        batches: iterable of ``(clips (B, T, 3, H, W) in [0, 1], labels (B,))``.
        attacks: ``{name: attack(clips, labels) -> adv_clips}``; default TA
            (:class:`videotaf.attack.TemporalAdversarialAugmentation`) and CE-based PGD
            (:class:`videotaf.attack.CrossEntropyAugmentation`) with the same ``eps``, ``step_size``, ``steps``.
        num_weakest: ``n`` of the weakest-frames metrics (default ``max(1, T' // 2)``).
        cam_target: class the CAMs explain: ``"pred"`` (the clean prediction, for the clean and the attacked
            clip alike), ``"label"`` (true label) or ``"own"`` (each clip's own prediction).
        score: Grad-CAM score, see :func:`videotaf.cam.temporal_gradcam`.
        seed: seeds torch's RNG (forked, the caller's state is kept) for the attacks' random target labels.
        cam_layer: dotted name of the module the CAMs (and the default TA's Eq. 2) read
            (:func:`videotaf.cam.cam_layer_of`); None: the model's own ``cam_layer``.
        target_rule: the default TA's target labels (:class:`~videotaf.attack.TAOptions`; Sec. 3.2's ``"paper"``
            rule, or ``"random"`` etc.).

    Returns:
        JSON-serialisable dict: ``num_clips``, ``cam_layer`` (the module's name), ``cam_frames`` (T'),
        ``cam_size`` (``[h, w]`` of its maps), ``num_weakest``, ``clean`` (metric ->
        ``{"mean", "std"}``, plus ``top1`` and ``mean_profile``, the mean per-frame share by position) and, per
        attack, ``{"metrics": ..., "shift": {"l1", "tv", "entropy_change", "nonkey_gain"} -> {"mean", "std"},
        "top1": accuracy on attacked clips, "mean_profile": ...}``.
    """
    if cam_target not in ("pred", "label", "own"):
        raise ValueError(f"cam_target must be 'pred', 'label' or 'own', got {cam_target!r}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    layer = cam_layer_of(model, cam_layer)  # a bad name fails before any clip is read
    if attacks is None:
        attacks = _default_attacks(model, eps, step_size, steps, cam_layer, target_rule)
    tally = _Tally(list(attacks), num_weakest)
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for b_idx, batch in enumerate(batches):
                if max_batches is not None and b_idx >= max_batches:
                    break
                clips = batch[0].to(device)
                labels = torch.as_tensor(batch[1]).to(device).long()
                clean = temporal_gradcam(
                    model, clips, targets=labels if cam_target == "label" else None, score=score, cam_layer=cam_layer
                )
                p = tally.add_clean(b_idx, clean, labels)
                for a, attack in attacks.items():
                    adv = attack(clips, labels).detach()
                    targets = None if cam_target == "own" else clean.targets
                    res = temporal_gradcam(model, adv, targets=targets, score=score, cam_layer=cam_layer)
                    with torch.no_grad():
                        hits = int((model(adv).argmax(1) == labels).sum())
                    tally.add_attacked(a, p, res.frame_scores.detach().double().cpu(), hits)
    finally:
        model.train(was_training)
    if tally.total == 0:
        raise ValueError("analyze_attention: the data gave no clips")
    out: dict[str, Any] = {
        "num_clips": tally.total,
        "cam_layer": module_name(model, layer),
        "cam_frames": tally.cam_frames,
        "cam_size": tally.cam_size,
        "num_weakest": tally.n_used,
        "cam_target": cam_target,
        "score": score,
        "attack_budget": {"eps": eps, "step_size": step_size, "steps": steps},
    }
    return {**out, **tally.summary()}


def _default_attacks(
    model: nn.Module, eps: float, step_size: float, steps: int, cam_layer: str | None, target_rule: TargetRule
) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """TA (Eq. 6, reading ``cam_layer``, targets by ``target_rule``) and CE-based PGD (Eq. 1) at the same budget."""
    options = TAOptions(cam_layer=cam_layer, target_rule=target_rule)
    return {
        "ta": TemporalAdversarialAugmentation(model, eps=eps, step_size=step_size, steps=steps, options=options),
        "ce": CrossEntropyAugmentation(model, eps=eps, step_size=step_size, steps=steps),
    }


class _Tally:
    """The per-clip metrics of :func:`analyze_attention`, batch by batch, and their summary."""

    def __init__(self, attacks: list[str], num_weakest: int | None) -> None:
        names = ("entropy", "weakest_share", "peak_share")
        self.attacks = attacks
        self.clean: dict[str, list[torch.Tensor]] = {k: [] for k in names}
        self.adv: dict[str, dict[str, list[torch.Tensor]]] = {a: {k: [] for k in names} for a in attacks}
        self.shift: dict[str, dict[str, list[torch.Tensor]]] = {
            a: {"l1": [], "tv": [], "entropy_change": [], "nonkey_gain": []} for a in attacks
        }
        self.profiles: dict[str, list[torch.Tensor]] = {"clean": [], **{a: [] for a in attacks}}
        self.correct = {"clean": 0, **{a: 0 for a in attacks}}
        self.total = 0
        self.cam_frames: int | None = None
        self.cam_size: list[int] | None = None
        self.num_weakest = num_weakest
        self.n_used: int | None = num_weakest

    def add_clean(self, b_idx: int, clean: Any, labels: torch.Tensor) -> torch.Tensor:
        """Record batch ``b_idx``'s clean CAMs (a :class:`~videotaf.cam.CamResult`); returns its ``p`` ``(B, T')``.

        The first batch fixes T', the map size and the default ``n``; a later batch with another T' is an error.
        """
        p = clean.frame_scores.detach().double().cpu()
        if self.cam_frames is None:
            self.cam_frames = p.shape[1]
            self.cam_size = [int(clean.cams.shape[2]), int(clean.cams.shape[3])]
            self.n_used = default_num_weakest(self.cam_frames) if self.num_weakest is None else int(self.num_weakest)
        elif p.shape[1] != self.cam_frames:
            raise ValueError(f"batch {b_idx}: {p.shape[1]} CAM frames, earlier batches had {self.cam_frames}")
        self.total += p.shape[0]
        self.correct["clean"] += int((clean.logits.argmax(1) == labels).sum())
        self.profiles["clean"].append(p)
        for k, v in attention_metrics(p, self.n_used).items():
            self.clean[k].append(v)
        return p

    def add_attacked(self, attack: str, p: torch.Tensor, q: torch.Tensor, hits: int) -> None:
        """Record attack ``attack``'s per-frame attention ``q`` of the clips whose clean one was ``p``."""
        self.correct[attack] += hits
        self.profiles[attack].append(q)
        for k, v in attention_metrics(q, self.n_used).items():
            self.adv[attack][k].append(v)
        for k, v in attention_shift(p, q, self.n_used).items():
            self.shift[attack][k].append(v)

    def _profile(self, name: str) -> list[float]:
        return [float(x) for x in torch.cat(self.profiles[name]).mean(dim=0)]

    def summary(self) -> dict[str, Any]:
        """``{"clean": ..., "attacks": {name: ...}}`` as :func:`analyze_attention` returns them."""
        clean = {k: _summary(v) for k, v in self.clean.items()}
        return {
            "clean": {
                **clean,
                "top1": 100.0 * self.correct["clean"] / self.total,
                "mean_profile": self._profile("clean"),
            },
            "attacks": {
                a: {
                    "metrics": {k: _summary(v) for k, v in self.adv[a].items()},
                    "shift": {k: _summary(v) for k, v in self.shift[a].items()},
                    "top1": 100.0 * self.correct[a] / self.total,
                    "mean_profile": self._profile(a),
                }
                for a in self.attacks
            },
        }
