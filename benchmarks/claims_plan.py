"""The claims benchmark's plan (``python -m benchmarks.claims``): its sizes, the compared arms, the sweep and the
paper's numbers they are read against. Nothing here runs anything."""

from __future__ import annotations

from dataclasses import dataclass

from videotaf.analysis.compare import MethodSpec
from videotaf.engine.recipes import SyntheticRecipe

PAPER = {
    # Something-Something V1, TSM-R50 8 frames (Tables 1, 2a-2c, 3): top-1 %
    "baseline": 45.6,
    "taf": 46.9,
    "ce_adv": 46.1,
    "advprop": 44.5,
    "alpha": {0.2: 46.3, 0.5: 46.7, 0.7: 46.9, 0.8: 46.5},
    "attack": {"e6_k1": 46.6, "e6_k3": 46.5, "e64_k1": 46.9, "e64_k3": 46.8},
    "mpc_top1": {"TSM": 17.9, "TSM+TAF": 18.9},  # mean of the eight Table 3 corruptions
}
METHOD_ORDER = ("plain", "ce_adv", "advprop", "taf")


@dataclass(frozen=True)
class Sizes(SyntheticRecipe):
    """Everything that sets the cost of a claims run: the synthetic baseline's recipe
    (:class:`videotaf.engine.recipes.SyntheticRecipe`: dataset, model input, schedules) plus the comparisons'
    seeds, arms and evaluation.

    Calibration of the defaults: a baseline of 24 epochs on 24 training clips per class reached train top-1 89.6
    (centre crop) against val top-1 25.8 (chance 12.5), the over-fitting regime of Sec. 3.1; its loss stays at
    chance for the first ~5 epochs with SGD from scratch. The validation split is larger than the training split
    on purpose: it only sets the measurement noise (one clip = 0.26 pp at 48 per class), not the learning problem.
    """

    # Where the claims' calibration differs from the demo's recipe: fewer training clips, a large validation
    # split scored once after the last epoch, a longer schedule with a warm-up, TA at the model's own CAM layer.
    train_per_class: int = 24
    val_per_class: int = 500
    epochs: int = 30
    finetune_epochs: int = 9
    milestones: tuple[int, ...] | None = None
    warmup_epochs: float = 1.0
    eval_every: int | None = None
    cam_layer: str | None = None

    seeds: int = 4
    methods: tuple[str, ...] = METHOD_ORDER
    sweep: bool = True
    corruptions: tuple[str, ...] = ("paper",)
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    #: Both readings of Sec. 4.1's fine-tuning LR, each a ``videotaf compare`` (the first one feeds the
    #: corruption, attention and sweep questions): "checkpoint" continues at the LR the baseline was saved
    #: with, "config" restarts at the baseline's initial LR.
    lr_readings: tuple[str, ...] = ("checkpoint", "config")  # the recipe's finetune_lr, if set, is "config"'s LR
    fraction: float = 0.25  # the cheaper TAF arm (adversarial.fraction); 1.0 leaves the arm out
    #: Arms of the comparisons after the first LR reading (plus the fraction arm): the LR question needs
    #: plain and TAF, the other methods are compared under the first reading.
    other_reading_methods: tuple[str, ...] = ("plain", "taf")
    other_reading_seeds: int = 3
    sweep_seeds: int = 1
    robust_seeds: int = 3  # plain and TAF models of the first seeds under corruption (Table 3)
    robust_clips: int = 512  # validation clips (an even spread over the split) for Table 3
    attention_clips: int = 512  # ... and for Figures 3 and 6
    n_boot: int = 10000


FULL = Sizes()
QUICK = Sizes(
    classes=7,
    train_per_class=4,
    val_per_class=3,
    video_frames=8,
    video_size=32,
    crop=32,
    batch_size=8,
    epochs=3,
    finetune_epochs=1,
    seeds=2,
    corruptions=("gaussian_noise", "gaussian_blur"),
    severities=(1, 3, 5),
    num_workers=0,
    sweep_seeds=1,
    robust_seeds=2,
    robust_clips=16,
    attention_clips=16,
    n_boot=500,
)


def arms(sizes: Sizes, methods: tuple[str, ...] | None = None) -> list[MethodSpec]:
    """The compared fine-tunes: ``plain`` first (the control), then the other ``methods`` (default
    ``sizes.methods``), then TAF attacking only ``sizes.fraction`` of each batch (Fast AdvProp's trick;
    ``adversarial.fraction``)."""
    methods = sizes.methods if methods is None else tuple(m for m in methods if m in sizes.methods)
    out = [MethodSpec("plain", "plain")] + [MethodSpec(m, m) for m in methods if m != "plain"]
    if sizes.fraction < 1.0 and "taf" in methods:
        out.append(MethodSpec(fraction_label(sizes), "taf", (f"adversarial.fraction={sizes.fraction:g}",)))
    return out


def fraction_label(sizes: Sizes) -> str:
    return f"taf_f{round(sizes.fraction * 100)}"


ALPHAS = (0.5, 0.7, 0.9)
ATTACKS = {  # Table 2c: name -> (eps, step, K)
    "e6_k1": (6 / 255, 2 / 255, 1),
    "e6_k3": (6 / 255, 2 / 255, 3),
    "e64_k1": (64 / 255, 32 / 255, 1),
    "e64_k3": (64 / 255, 32 / 255, 3),
}
DEFAULT_POINT = ("alpha_0.7", "e64_k1")  # the paper's setting: the main ``taf`` arm
SETTING_NAMES = {
    "alpha_0.5": "alpha 0.5",
    "alpha_0.7": "alpha 0.7 (= taf)",
    "alpha_0.9": "alpha 0.9",
    "e6_k1": "eps 6, step 2, K 1",
    "e6_k3": "eps 6, step 2, K 3",
    "e64_k1": "eps 64, step 32, K 1 (= taf)",
    "e64_k3": "eps 64, step 32, K 3",
}


def sweep_arms() -> dict[str, MethodSpec]:
    """Tables 2b and 2c: TAF at other alpha / (eps, step, K), each a compare arm with its overrides; the paper's
    point (alpha 0.7, eps 64/255, step 32/255, K 1) is the main ``taf`` arm and is not run twice."""
    out = {f"alpha_{a:g}": MethodSpec(f"taf_a{a:g}", "taf", (f"adversarial.alpha={a}",)) for a in ALPHAS}
    for k, (e, s, n) in ATTACKS.items():
        sets = (f"adversarial.eps={e}", f"adversarial.step_size={s}", f"adversarial.steps={n}")
        out[k] = MethodSpec(f"taf_{k}", "taf", sets)
    return {k: (MethodSpec("taf", "taf") if k in DEFAULT_POINT else v) for k, v in out.items()}
