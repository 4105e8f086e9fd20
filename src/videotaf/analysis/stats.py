"""Paired statistics for ``videotaf compare``: did a fine-tuning method beat the control on this data?

``videotaf compare`` fine-tunes, for every seed, one model per method (``plain`` = the control, ``taf``,
``ce_adv``, ``advprop``) from the same checkpoint for the same number of epochs, with the same data order for
the same seed, and scores each on the same validation clips. This module turns those scores into differences
with confidence intervals and a verdict. It is pure: numpy arrays and lists in, JSON-ready dicts out (Python
floats, ints, lists, ``None``; never NaN), no torch, no files.

Units: accuracies are percent, differences are percentage points (pp), method minus control.

Two sources of noise, two kinds of interval:

- **Seeds** (:func:`paired_seed_difference`): the per-seed top-1 difference ``method - control`` (paired: the
  same seed gives both runs the same data order), Student t interval over seeds. This is the noise of
  training, usually the larger one: it is the interval the verdict needs whenever it can be measured (n >= 2).
- **Clips** (:func:`paired_bootstrap`, :func:`mcnemar`): the validation set is a sample of clips. A paired
  bootstrap over clip indices and McNemar's test on the per-clip outcomes measure that noise only; with one
  training run per method they cannot see training noise and so overstate certainty.

:func:`minimum_detectable_difference` says how large a true difference the design could detect (80% power),
:func:`verdict` combines the intervals (rule in its docstring), :func:`compare_methods` computes everything
for ``compare.json``; :mod:`videotaf.analysis.render` renders it (:func:`format_markdown`).

Runtime dependency: scipy (``scipy>=1.10``), for the Student t, binomial, chi-square and normal quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

__all__ = [
    "BETTER",
    "WORSE",
    "NO_DIFFERENCE",
    "EXACT_MAX_DISCORDANT",
    "ONE_SEED_NOTE",
    "paired_seed_difference",
    "paired_bootstrap",
    "bootstrap_means",
    "corruption_summary",
    "paired_score_difference",
    "mcnemar",
    "minimum_detectable_difference",
    "seeds_to_detect",
    "MAX_SEEDS",
    "verdict",
    "per_class_changes",
    "compare_methods",
    "format_markdown",
]

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference"

# McNemar: the exact binomial test below this many discordant pairs, the chi-square approximation (with
# continuity correction) from it on. 25 is the usual cut-off (e.g. statsmodels' documentation): below it the
# chi-square p-value is noticeably off, above it the two agree closely and the exact test is no longer needed.
EXACT_MAX_DISCORDANT = 25

ONE_SEED_NOTE = (
    "one seed: training noise (seed-to-seed variation) was not measured; the verdict rests on the clip-level "
    "bootstrap interval alone, which overstates certainty; run 2 or more seeds"
)

#: :func:`seeds_to_detect` looks no further: beyond it the answer is "not reachable" (a difference that small is
#: not worth that many fine-tunes, and the MDD's t approximation is long since the normal one).
MAX_SEEDS = 1000

# Bootstrap index draws per chunk (4M int64 = 32 MiB): bounds memory for any n_boot x N. Chunking does not
# change the result: numpy's Generator draws the same index stream whatever the chunk shape.
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------------------------------- inputs


def _check_level(value: float, name: str) -> float:
    """A probability strictly between 0 and 1 (a confidence level, alpha or power)."""
    v = float(value)
    if not (0.0 < v < 1.0):
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return v


def _as_scores(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """One finite number per seed, as a ``(n,)`` float array."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence (one value per seed), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {a.tolist()}")
    return a


def _as_correct(values: ArrayLike, name: str) -> NDArray[np.bool_]:
    """Per-seed per-clip correctness as a ``(S, N)`` bool array; ``(N,)`` is one seed."""
    a = np.asarray(values)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be (S seeds, N clips) with S, N >= 1, got shape {np.asarray(values).shape}")
    if a.dtype != np.bool_:
        # 0/1 integers (e.g. read back from JSON) are accepted; anything else is a mistake worth reporting
        # (probabilities or accuracies passed where per-clip outcomes were expected).
        if not np.issubdtype(a.dtype, np.integer) or not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must be bool (or 0/1 integers): per-clip top-1 correctness, got {a.dtype}")
        a = a.astype(np.bool_)
    return a


def _as_clip_scores(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """Per-seed per-clip scores in [0, 1] as a ``(S, N)`` float array; ``(N,)`` is one seed."""
    a = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name} must be (S seeds, N clips) with S, N >= 1, got shape {np.asarray(values).shape}")
    if not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"{name} must be per-clip scores in [0, 1] (fractions, not percent)")
    return a


def _as_pair(correct_method: ArrayLike, correct_control: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    m = _as_correct(correct_method, "correct_method")
    c = _as_correct(correct_control, "correct_control")
    if m.shape != c.shape:
        raise ValueError(
            f"correct_method {m.shape} and correct_control {c.shape} must have the same shape: "
            "the same seeds and the same clips in the same order"
        )
    return m, c


def _as_ci(ci: Sequence[float] | None, name: str) -> tuple[float, float] | None:
    if ci is None:
        return None
    if len(ci) != 2:
        raise ValueError(f"{name} must be [lo, hi], got {ci!r}")
    lo, hi = float(ci[0]), float(ci[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be finite with lo <= hi, got {ci!r}")
    return lo, hi


def _summary(values: NDArray[np.float64]) -> dict[str, Any]:
    """``{"mean", "sd", "per_seed"}``; ``sd`` is the sample sd (ddof 1), ``None`` for one value."""
    return {
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if values.size >= 2 else None,
        "per_seed": [float(v) for v in values],
    }


def _top1(correct: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Per-seed top-1 (%) of ``(S, N)`` correctness: ``(S,)``."""
    out: NDArray[np.float64] = 100.0 * correct.mean(axis=1, dtype=np.float64)
    return out


# ----------------------------------------------------------------------------------------------- statistics


def paired_seed_difference(
    method_top1: Sequence[float] | ArrayLike,
    control_top1: Sequence[float] | ArrayLike,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Per-seed paired difference ``method - control`` (pp) with a Student t interval over seeds.

    ``method_top1``, ``control_top1``: ``(n,)`` top-1 (%) per seed, entry ``s`` of both from seed ``s`` (same
    data order, so the difference cancels the seed's share of the noise).

    Returns ``{"mean", "sd", "ci95": [lo, hi], "per_seed": [d_s], "n", "confidence"}``:
    ``mean = d̄``, ``sd`` the sample sd of the ``d_s`` (ddof 1), ``ci95 = d̄ ± t_{(1+confidence)/2, n-1} sd/√n``
    (the key is ``ci95`` whatever ``confidence`` is; ``confidence`` says the level). With ``n = 1`` there is
    no spread to measure: ``sd`` and ``ci95`` are ``None``. Identical differences give a zero-width interval.
    """
    conf = _check_level(confidence, "confidence")
    m = _as_scores(method_top1, "method_top1")
    c = _as_scores(control_top1, "control_top1")
    if m.shape != c.shape:
        raise ValueError(f"method_top1 ({m.size} seeds) and control_top1 ({c.size} seeds) differ in length")
    d = m - c
    n = int(d.size)
    mean = float(d.mean())
    sd: float | None = None
    ci: list[float] | None = None
    if n >= 2:
        sd = float(d.std(ddof=1))
        half = float(sps.t.ppf(0.5 + conf / 2.0, n - 1)) * sd / math.sqrt(n)
        ci = [mean - half, mean + half]
    return {"mean": mean, "sd": sd, "ci95": ci, "per_seed": [float(v) for v in d], "n": n, "confidence": conf}


def bootstrap_means(per_clip: NDArray[np.float64], n_boot: int, seed: int) -> NDArray[np.float64]:
    """Means of ``K`` per-clip series ``(K, N)`` over ``n_boot`` resamples of the clip indices: ``(n_boot, K)``.

    Every series is resampled with the same indices (paired); resample ``b`` uses row ``b`` of
    ``np.random.default_rng(seed).integers(0, N, size=(n_boot, N))``, drawn in chunks (the stream is the same).
    """
    n_series, n_clips = per_clip.shape
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, n_series), dtype=np.float64)
    rows = max(1, _CHUNK_ELEMENTS // n_clips)
    for start in range(0, n_boot, rows):
        k = min(rows, n_boot - start)
        idx = rng.integers(0, n_clips, size=(k, n_clips))
        boot[start : start + k] = per_clip[:, idx].mean(axis=2).T
    return boot


def _percentile_ci(values: NDArray[np.float64], conf: float) -> list[float]:
    lo, hi = np.percentile(values, [50.0 * (1.0 - conf), 50.0 * (1.0 + conf)])
    return [float(lo), float(hi)]


def corruption_summary(
    clean: ArrayLike, mpc: ArrayLike, n_boot: int = 10000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """mPC and rPC of one model with percentile bootstrap intervals over clips (Yi et al. 2021).

    ``clean`` ``(N,)``: 1/0 top-1 correctness per clip on the clean clips; ``mpc`` ``(N,)``: per clip, the
    fraction of the corruption x severity cells it got right. ``mPC = 100 mean(mpc)`` (%) and
    ``rPC = mean(mpc) / mean(clean)``; one resample of clip indices (:func:`bootstrap_means`) gives both, so the
    rPC interval is that of the ratio. Returns ``{"mPC", "mPC_ci95", "rPC", "rPC_ci95", "n_clips", "n_boot",
    "confidence", "seed"}`` (rPC and its interval ``None`` when the clean accuracy is 0).
    """
    conf = _check_level(confidence, "confidence")
    c = _as_scores(clean, "clean")
    m = _as_scores(mpc, "mpc")
    if c.shape != m.shape:
        raise ValueError(f"clean ({c.size} clips) and mpc ({m.size} clips) differ in length")
    boot = bootstrap_means(np.stack([m, c]), int(n_boot), seed)
    rpc = float(m.mean() / c.mean()) if c.mean() > 0 else None
    rpc_ci = None
    if rpc is not None:
        # A resample with no clean clip right has no ratio; it is left out (rare unless clean accuracy is tiny).
        ratios = boot[boot[:, 1] > 0, 0] / boot[boot[:, 1] > 0, 1]
        rpc_ci = _percentile_ci(ratios, conf)
    return {
        "mPC": 100.0 * float(m.mean()),
        "mPC_ci95": _percentile_ci(100.0 * boot[:, 0], conf),
        "rPC": rpc,
        "rPC_ci95": rpc_ci,
        "n_clips": int(m.size),
        "n_boot": int(n_boot),
        "confidence": conf,
        "seed": int(seed),
    }


def paired_score_difference(
    scores_method: ArrayLike,
    scores_control: ArrayLike,
    n_boot: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """``method - control`` on a per-clip score in [0, 1] (e.g. the per-clip mPC), in pp, over seeds and clips.

    ``scores_method``, ``scores_control``: ``(S, N)`` (``(N,)`` = one seed), row ``s`` from seed ``s`` of both,
    the same clips in the same order. Returns ``{"method": {"mean", "sd", "per_seed"}, "control": {...},
    "delta": paired_seed_difference(...), "bootstrap": {"mean", "ci95", "n_boot", "confidence", "seed"}}``:
    the Student t interval over seeds (training noise) and the paired bootstrap over clips of the seed-mean
    difference (clip noise), as :func:`paired_seed_difference` and :func:`paired_bootstrap` do for top-1.
    """
    conf = _check_level(confidence, "confidence")
    m = _as_clip_scores(scores_method, "scores_method")
    c = _as_clip_scores(scores_control, "scores_control")
    if m.shape != c.shape:
        raise ValueError(f"scores_method {m.shape} and scores_control {c.shape} differ: same seeds and clips needed")
    per_seed_m, per_seed_c = 100.0 * m.mean(axis=1), 100.0 * c.mean(axis=1)
    per_clip = 100.0 * (m - c).mean(axis=0)
    boot = bootstrap_means(per_clip[None], int(n_boot), seed)[:, 0]
    return {
        "method": _summary(per_seed_m),
        "control": _summary(per_seed_c),
        "delta": paired_seed_difference(per_seed_m, per_seed_c, conf),
        "bootstrap": {
            "mean": float(per_clip.mean()),
            "ci95": _percentile_ci(boot, conf),
            "n_boot": int(n_boot),
            "confidence": conf,
            "seed": int(seed),
        },
    }


def paired_bootstrap(
    correct_method: ArrayLike,
    correct_control: ArrayLike,
    n_boot: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap over validation clips of the mean-over-seeds top-1 difference (pp).

    ``correct_method``, ``correct_control``: ``(S, N)`` bool (``(N,)`` = one seed), entry ``[s, i]`` is whether
    seed ``s``'s model got clip ``i`` right; the same clips in the same order in every row of both.

    Statistic: ``T = mean_s (top1_method[s] - top1_control[s])``. One resample draws ``N`` clip indices with
    replacement and recomputes ``T`` on those clips; the indices are the same for every seed and both models
    (the pairing: a clip's difficulty cancels). Resampling: ``rng = np.random.default_rng(seed)``, resample
    ``b`` uses row ``b`` of ``rng.integers(0, N, size=(n_boot, N))``; the interval is the percentile one
    (``np.percentile`` at ``(1 ± confidence)/2``), so the result is a function of the inputs and ``seed``.
    The same ``seed`` for every method of a comparison resamples the same clips for each.

    Returns ``{"mean": T, "ci95": [lo, hi], "n_boot", "confidence", "seed", "n_seeds": S, "n_clips": N}``.
    It measures clip sampling noise only, not training noise (see :func:`verdict`).
    """
    conf = _check_level(confidence, "confidence")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    n_boot = int(n_boot)
    m, c = _as_pair(correct_method, correct_control)
    n_seeds, n_clips = m.shape
    # Every seed has the same N clips, so mean_s (mean_i d[s, i]) = mean_i (mean_s d[s, i]): a resample of
    # clip indices only needs the per-clip seed-mean difference, a (N,) vector, however many seeds there are.
    per_clip = 100.0 * (m.astype(np.float64) - c.astype(np.float64)).mean(axis=0)
    boot = bootstrap_means(per_clip[None], n_boot, seed)[:, 0]
    lo, hi = np.percentile(boot, [50.0 * (1.0 - conf), 50.0 * (1.0 + conf)])
    return {
        "mean": float(per_clip.mean()),
        "ci95": [float(lo), float(hi)],
        "n_boot": n_boot,
        "confidence": conf,
        "seed": int(seed),
        "n_seeds": int(n_seeds),
        "n_clips": int(n_clips),
    }


def mcnemar(correct_method: ArrayLike, correct_control: ArrayLike) -> dict[str, Any]:
    """McNemar's test of ``P(method right, control wrong) = P(method wrong, control right)``, two-sided.

    ``correct_method``, ``correct_control``: ``(S, N)`` bool (``(N,)`` = one seed), paired entry by entry. The
    ``S x N`` pairs are pooled: ``b`` = method right and control wrong, ``c`` = the reverse. Pooling treats a
    clip seen under several seeds as several independent pairs, so with S > 1 the p-value is somewhat
    optimistic; the seed interval of :func:`paired_seed_difference` is the check on that.

    Test (``"test"`` says which was used):

    - ``"exact"`` when ``b + c < 25`` (:data:`EXACT_MAX_DISCORDANT`): under H0, ``b ~ Binomial(b + c, 1/2)``;
      ``p = min(1, 2 P(X <= min(b, c)))``, ``statistic = min(b, c)``. ``b + c = 0`` gives ``p = 1``.
    - ``"chi2"`` otherwise: ``statistic = max(|b - c| - 1, 0)^2 / (b + c)`` (Edwards' continuity correction,
      floored at 0 so that ``b = c`` gives ``p = 1``), ``p = P(chi2_1 >= statistic)``.

    Returns ``{"b", "c", "n_pairs": S*N, "discordance_rate": (b + c)/(S*N), "statistic", "p_value", "test"}``.
    """
    m, c = _as_pair(correct_method, correct_control)
    b = int(np.count_nonzero(m & ~c))
    cc = int(np.count_nonzero(~m & c))
    n_disc = b + cc
    n_pairs = int(m.size)
    if n_disc < EXACT_MAX_DISCORDANT:
        test = "exact"
        k = min(b, cc)
        statistic = float(k)
        # The binomial(n, 1/2) is symmetric: the two-sided p is twice the smaller tail (capped at 1 when b = c).
        p = 1.0 if n_disc == 0 else min(1.0, 2.0 * float(sps.binom.cdf(k, n_disc, 0.5)))
    else:
        test = "chi2"
        statistic = max(abs(b - cc) - 1, 0) ** 2 / n_disc
        p = float(sps.chi2.sf(statistic, 1))
    return {
        "b": b,
        "c": cc,
        "n_pairs": n_pairs,
        "discordance_rate": n_disc / n_pairs,
        "statistic": float(statistic),
        "p_value": float(p),
        "test": test,
    }


def minimum_detectable_difference(
    seed_sd: float | None,
    n_seeds: int,
    discordance_rate: float | None = None,
    n_pairs: int | None = None,
    alpha: float = 0.05,
    power: float = 0.80,
) -> dict[str, Any]:
    """Smallest true top-1 difference (pp) detectable with ``power`` by a two-sided test at level ``alpha``.

    **Seeds** (``"seeds"``), from the sd of the per-seed paired differences and the number of seeds ``n``::

        MDD_seeds = (t_{1-alpha/2, n-1} + t_{power, n-1}) * seed_sd / sqrt(n)

    the usual t approximation to the power of the paired t test (Snedecor & Cochran, *Statistical Methods*,
    8th ed., 1989, Sec. 6.14; it replaces the noncentral t by a shifted central one). ``None`` when ``n < 2``
    or ``seed_sd`` is ``None``.

    **Clips** (``"clips"``), from the McNemar design: ``n_pairs`` paired per-clip outcomes (pooled over seeds,
    as :func:`mcnemar` tests them) of which a fraction ``psi = discordance_rate`` are discordant. Connor's
    sample size for McNemar's test (R. J. Connor, "Sample size for testing differences in proportions for the
    paired-sample design", *Biometrics* 43:207-211, 1987),
    ``n = (z_a sqrt(psi) + z_b sqrt(psi - delta^2))^2 / delta^2`` with ``z_a = z_{1-alpha/2}``,
    ``z_b = z_{power}``, solved for the difference of proportions ``delta`` (a quadratic; the root with
    ``sqrt(n) delta >= z_a sqrt(psi)``)::

        delta = sqrt(psi) * (z_a sqrt(n) + z_b sqrt(n + z_b^2 - z_a^2)) / (n + z_b^2);  MDD_clips = 100 delta

    For large ``n`` it is ``(z_a + z_b) sqrt(psi / n)``, the normal approximation on the paired difference of
    proportions. It is the power of the uncorrected McNemar test; the continuity-corrected one that
    :func:`mcnemar` reports has slightly less (about 0.78 instead of 0.80). It is a large-sample formula:
    rough when ``n psi`` (the expected discordant pairs) is below ~10. ``None`` when either input is missing, or ``n_pairs < z_a^2`` (no root: too few pairs for any power).

    A zero spread (``seed_sd = 0`` or ``psi = 0``) gives 0: the data show no noise to detect against; read it
    with ``n``. Returns ``{"seeds", "clips", "mdd": the larger available one (None if neither), "alpha",
    "power", "n_seeds", "n_pairs", "discordance_rate"}``.
    """
    a = _check_level(alpha, "alpha")
    pw = _check_level(power, "power")
    seeds: float | None = None
    if seed_sd is not None and n_seeds >= 2:
        if not (math.isfinite(seed_sd) and seed_sd >= 0):
            raise ValueError(f"seed_sd must be finite and >= 0, got {seed_sd!r}")
        df = n_seeds - 1
        seeds = (float(sps.t.ppf(1.0 - a / 2.0, df)) + float(sps.t.ppf(pw, df))) * seed_sd / math.sqrt(n_seeds)
    clips: float | None = None
    if discordance_rate is not None and n_pairs is not None:
        psi = float(discordance_rate)
        if not (0.0 <= psi <= 1.0):
            raise ValueError(f"discordance_rate must be in [0, 1], got {discordance_rate!r}")
        if n_pairs < 1:
            raise ValueError(f"n_pairs must be >= 1, got {n_pairs!r}")
        za = float(sps.norm.ppf(1.0 - a / 2.0))
        zb = float(sps.norm.ppf(pw))
        n = float(n_pairs)
        if n >= za * za:
            delta = math.sqrt(psi) * (za * math.sqrt(n) + zb * math.sqrt(n + zb * zb - za * za)) / (n + zb * zb)
            clips = 100.0 * delta
    available = [v for v in (seeds, clips) if v is not None]
    return {
        "seeds": seeds,
        "clips": clips,
        "mdd": max(available) if available else None,
        "alpha": a,
        "power": pw,
        "n_seeds": int(n_seeds),
        "n_pairs": None if n_pairs is None else int(n_pairs),
        "discordance_rate": None if discordance_rate is None else float(discordance_rate),
    }


def seeds_to_detect(
    observed: float,
    seed_sd: float | None,
    clips_per_seed: int | None = None,
    discordance_rate: float | None = None,
    alpha: float = 0.05,
    power: float = 0.80,
) -> int | None:
    """The smallest number of seeds ``n >= 2`` whose MDD is at most the observed difference ``|observed|`` (pp).

    ``MDD(n) = minimum_detectable_difference(seed_sd, n, discordance_rate, n * clips_per_seed)["mdd"]``: the seed
    sd and the clips' discordance rate are held at their observed values, the seed term shrinks as
    ``(t_{1-alpha/2, n-1} + t_{power, n-1}) / sqrt(n)`` and the clip term as the pooled pairs grow with ``n``.
    ``MDD(n)`` decreases with ``n``, so the answer is found by doubling, then bisecting.

    Returns ``None`` when it cannot be said: ``seed_sd`` unknown (one seed), ``observed`` (about) 0, or more
    than :data:`MAX_SEEDS` seeds needed ("not reachable").
    """
    target = abs(float(observed))
    if seed_sd is None or not math.isfinite(target) or target < 1e-9:
        return None

    def within(n: int) -> bool:
        pairs = None if clips_per_seed is None else n * int(clips_per_seed)
        mdd = minimum_detectable_difference(seed_sd, n, discordance_rate, pairs, alpha, power)["mdd"]
        return mdd is not None and mdd <= target

    hi = 2
    while not within(hi):
        if hi >= MAX_SEEDS:
            return None
        hi = min(2 * hi, MAX_SEEDS)
    lo = max(2, hi // 2)  # within(hi) holds; find the first n in [lo, hi] where it does
    while lo < hi:
        mid = (lo + hi) // 2
        if within(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def verdict(
    seed_ci: Sequence[float] | None,
    bootstrap_ci: Sequence[float] | None,
    *,
    n_seeds: int | None = None,
) -> str:
    """``"better"``, ``"worse"`` or ``"no detectable difference"`` from the intervals of ``method - control``.

    Rule: ``"better"`` when every available interval lies strictly above 0, ``"worse"`` when every one lies
    strictly below 0, otherwise ``"no detectable difference"`` (an interval touching 0 does not count).

    ``seed_ci`` (:func:`paired_seed_difference`) is required whenever it exists, i.e. with 2 or more seeds:
    training noise usually dominates, and a clip-level interval alone measures only the sampling of
    validation clips, so it would call a seed-to-seed fluctuation a win. Pass ``n_seeds`` to have that checked
    (``ValueError`` when ``n_seeds >= 2`` and ``seed_ci`` is ``None``). With one seed ``seed_ci`` is ``None``
    and the verdict rests on ``bootstrap_ci`` alone; :func:`compare_methods` then adds a ``"note"`` saying
    training noise was not measured (:data:`ONE_SEED_NOTE`).
    """
    if n_seeds is not None and n_seeds >= 2 and seed_ci is None:
        raise ValueError(f"verdict: {n_seeds} seeds but no seed interval; the seed interval is required with >= 2")
    cis = [ci for ci in (_as_ci(seed_ci, "seed_ci"), _as_ci(bootstrap_ci, "bootstrap_ci")) if ci is not None]
    if not cis:
        raise ValueError("verdict needs at least one confidence interval")
    if all(lo > 0.0 for lo, _ in cis):
        return BETTER
    if all(hi < 0.0 for _, hi in cis):
        return WORSE
    return NO_DIFFERENCE


def _per_class(
    labels: NDArray[np.int64],
    correct_method: NDArray[np.bool_],
    correct_control: NDArray[np.bool_],
    class_names: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Per-class top-1 from ``(N,)`` labels and ``(S, N)`` correctness, pooled over seeds."""
    names = [str(n) for n in class_names]
    if len(set(names)) != len(names):
        raise ValueError("class_names must be unique")
    n_classes = len(names)
    if labels.shape != (correct_method.shape[1],):
        raise ValueError(f"labels must be ({correct_method.shape[1]},) (one per clip), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be class indices in 0..{n_classes - 1}")
    n_seeds = correct_method.shape[0]
    clips = np.bincount(labels, minlength=n_classes)
    # Correct counts summed over seeds, per class; divided by S * clips gives the seed-pooled top-1.
    hits_m = np.bincount(labels, weights=correct_method.sum(axis=0), minlength=n_classes)
    hits_c = np.bincount(labels, weights=correct_control.sum(axis=0), minlength=n_classes)
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names):
        if clips[k] == 0:
            # No clip of this class: no accuracy (as eval.json's per_class), not a fake 0.
            out[name] = {"control": None, "method": None, "delta": None, "num_clips": 0}
            continue
        total = float(n_seeds * clips[k])
        ctl = 100.0 * float(hits_c[k]) / total
        met = 100.0 * float(hits_m[k]) / total
        out[name] = {"control": ctl, "method": met, "delta": met - ctl, "num_clips": int(clips[k])}
    return out


def _as_labels(labels: ArrayLike, n_clips: int) -> NDArray[np.int64]:
    """``(N,)`` or ``(S, N)`` (identical rows: the same clips every seed) integer labels as ``(N,)``."""
    lab = np.asarray(labels)
    if lab.ndim == 2:
        if lab.shape[0] == 0 or not (lab == lab[:1]).all():
            raise ValueError("labels (S, N) must have identical rows: the same clips for every seed")
        lab = lab[0]
    if lab.ndim != 1 or lab.shape[0] != n_clips:
        raise ValueError(f"labels must be ({n_clips},) or (S, {n_clips}), got {np.asarray(labels).shape}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got {lab.dtype}")
    return lab.astype(np.int64)


def per_class_changes(
    labels: ArrayLike,
    pred_method: ArrayLike,
    pred_control: ArrayLike,
    class_names: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Top-1 (%) per class of both models and the change ``method - control`` (pp), pooled over seeds.

    ``labels``: ``(N,)`` class indices (or ``(S, N)`` with identical rows); ``pred_method``, ``pred_control``:
    ``(N,)`` or ``(S, N)`` predicted class indices, the same clips in the same order. ``class_names[k]`` names
    class ``k``. Pooling: a class's top-1 is its correct predictions over all seeds and its clips divided by
    ``S x num_clips`` (= the mean over seeds of the per-seed class top-1).

    Returns ``{name: {"control", "method", "delta", "num_clips"}}`` in class-index order; ``num_clips`` counts
    the class's clips once (not per seed). A class without clips gives ``None`` for the three accuracies.
    """
    pm = np.asarray(pred_method)
    pc = np.asarray(pred_control)
    pm = pm[None, :] if pm.ndim == 1 else pm
    pc = pc[None, :] if pc.ndim == 1 else pc
    if pm.ndim != 2 or pm.shape != pc.shape or pm.shape[1] == 0:
        raise ValueError(f"pred_method {pm.shape} and pred_control {pc.shape} must be the same (S, N), N >= 1")
    for arr, name in ((pm, "pred_method"), (pc, "pred_control")):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be integer class indices, got {arr.dtype}")
    lab = _as_labels(labels, pm.shape[1])
    return _per_class(lab, pm == lab[None, :], pc == lab[None, :], class_names)


# -------------------------------------------------------------------------------------------------- compare


def _clip_level(
    m: NDArray[np.bool_],
    c: NDArray[np.bool_],
    *,
    n_boot: int,
    confidence: float,
    seed: int,
    alpha: float,
    power: float,
) -> dict[str, Any]:
    """The statistics of one method against the control on one set of clips (all of them, or the subset)."""
    n_seeds = m.shape[0]
    delta = paired_seed_difference(_top1(m), _top1(c), confidence)
    boot = paired_bootstrap(m, c, n_boot=n_boot, confidence=confidence, seed=seed)
    mc = mcnemar(m, c)
    mdd = minimum_detectable_difference(
        delta["sd"], n_seeds, mc["discordance_rate"], mc["n_pairs"], alpha=alpha, power=power
    )
    needed = seeds_to_detect(delta["mean"], delta["sd"], m.shape[1], mc["discordance_rate"], alpha, power)
    return {
        "top1": _summary(_top1(m)),
        "delta_top1": delta,
        "bootstrap": boot,
        "mcnemar": mc,
        "mdd": mdd,
        "seeds_to_detect": needed,
        "verdict": verdict(delta["ci95"], boot["ci95"], n_seeds=n_seeds),
        "note": ONE_SEED_NOTE if n_seeds < 2 else None,
    }


def _per_seed_values(
    values: Mapping[str, Sequence[float] | ArrayLike] | None, names: Sequence[str], n_seeds: int, what: str
) -> dict[str, NDArray[np.float64]] | None:
    if values is None:
        return None
    out: dict[str, NDArray[np.float64]] = {}
    for name in names:
        if name not in values:
            raise ValueError(f"{what}: no entry for method {name!r} (need one for every method and the control)")
        arr = _as_scores(values[name], f"{what}[{name!r}]")
        if arr.size != n_seeds:
            raise ValueError(f"{what}[{name!r}]: {arr.size} values for {n_seeds} seeds")
        out[name] = arr
    return out


def compare_methods(  # size: the compare command's options, as keywords of the public API
    correct: Mapping[str, ArrayLike],
    control: str = "plain",
    *,
    labels: ArrayLike | None = None,
    class_names: Sequence[str] | None = None,
    subset_mask: ArrayLike | None = None,
    subset_name: str = "subset",
    train_top1: Mapping[str, Sequence[float] | ArrayLike] | None = None,
    val_loss: Mapping[str, Sequence[float] | ArrayLike] | None = None,
    n_boot: int = 10000,
    confidence: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.80,
    seed: int = 0,
) -> dict[str, Any]:
    """Every statistic of every method against the control: the body of ``compare.json``.

    Inputs (S seeds, N validation clips; row ``s`` of every array is seed ``s``, column ``i`` clip ``i``):

    - ``correct``: ``{method: (S, N) bool}`` top-1 correctness per seed and clip (``(N,)`` = one seed); must
      hold ``control`` and at least one other method, all of the same shape. Methods keep their order.
    - ``labels`` ``(N,)`` int and ``class_names`` (``C`` names): for ``per_class`` (both or neither).
    - ``subset_mask`` ``(N,)`` bool: the clips of the long-term classes (or any subset); named ``subset_name``.
    - ``train_top1``: ``{method: (S,)}`` final train top-1 (%) per seed; ``val_loss``: ``{method: (S,)}``
      validation loss per seed. When given, they need an entry for every method including the control.
    - ``n_boot``, ``confidence``, ``seed``: for :func:`paired_bootstrap` (one ``seed`` for all methods, so all
      resample the same clips) and every interval; ``alpha``, ``power``: for the MDD.

    Returns::

        {"control": name, "n_seeds": S, "n_clips": N, "confidence", "n_boot", "seed", "alpha", "power",
         "control_top1": {"mean", "sd", "per_seed"},           # percent; sd None with one seed
         "subset": {"name", "num_clips", "control_top1": {...}} or None,
         "control_train_val_gap": {"mean", "sd", "per_seed"} or None,
         "control_val_loss": {"mean", "sd", "per_seed"} or None,
         "methods": {method: {                                  # every method but the control
             "top1": {"mean", "sd", "per_seed"},
             "delta_top1": paired_seed_difference(...),         # pp, Student t over seeds
             "bootstrap": paired_bootstrap(...),                # pp, paired over clips
             "mcnemar": mcnemar(...),
             "mdd": minimum_detectable_difference(...),         # pp
             "seeds_to_detect": seeds_to_detect(...),           # seeds for MDD <= |delta mean|, or None
             "verdict": verdict(...),
             "note": ONE_SEED_NOTE with one seed, else None,
             "subset": {"num_clips", the same seven keys on the subset clips} or None,
             "per_class": per_class_changes(...) or None,
             "train_val_gap": {"mean", "sd", "per_seed",        # train top-1 - val top-1 (pp) per seed
                               "delta_vs_control": paired_seed_difference(gap, control gap)} or None,
             "val_loss": {"mean", "sd", "per_seed",
                          "delta_vs_control": paired_seed_difference(loss, control loss)} or None}}}

    (``val_loss.delta_vs_control`` is in loss units, not pp.) Everything is JSON-ready.
    """
    if control not in correct:
        raise ValueError(f"control {control!r} not among the methods {list(correct)}")
    names = list(correct)
    if len(names) < 2:
        raise ValueError("compare_methods needs the control and at least one other method")
    arrays = {name: _as_correct(correct[name], f"correct[{name!r}]") for name in names}
    shape = arrays[control].shape
    for name, arr in arrays.items():
        if arr.shape != shape:
            raise ValueError(
                f"correct[{name!r}] is {arr.shape} but the control's is {shape}: every method needs the same "
                "seeds and the same clips in the same order"
            )
    n_seeds, n_clips = shape
    conf = _check_level(confidence, "confidence")
    opts: dict[str, Any] = {"n_boot": n_boot, "confidence": conf, "seed": seed, "alpha": alpha, "power": power}

    mask: NDArray[np.bool_] | None = None
    if subset_mask is not None:
        mask = np.asarray(subset_mask)
        if mask.dtype != np.bool_ or mask.shape != (n_clips,):
            raise ValueError(f"subset_mask must be ({n_clips},) bool, got {mask.shape} {mask.dtype}")
        if not mask.any():
            raise ValueError("subset_mask selects no clip")
    if (labels is None) != (class_names is None):
        raise ValueError("labels and class_names go together: give both for per_class, or neither")
    lab = None if labels is None else _as_labels(labels, n_clips)
    train = _per_seed_values(train_top1, names, n_seeds, "train_top1")
    loss = _per_seed_values(val_loss, names, n_seeds, "val_loss")

    ctl = arrays[control]
    ctl_top1 = _top1(ctl)
    ctl_gap = None if train is None else train[control] - ctl_top1
    methods: dict[str, Any] = {}
    for name in names:
        if name == control:
            continue
        m = arrays[name]
        entry = _clip_level(m, ctl, **opts)
        entry["subset"] = None
        if mask is not None:
            entry["subset"] = {"num_clips": int(mask.sum()), **_clip_level(m[:, mask], ctl[:, mask], **opts)}
        entry["per_class"] = None if lab is None or class_names is None else _per_class(lab, m, ctl, class_names)
        entry["train_val_gap"] = None
        if train is not None and ctl_gap is not None:
            gap = train[name] - _top1(m)
            entry["train_val_gap"] = {**_summary(gap), "delta_vs_control": paired_seed_difference(gap, ctl_gap, conf)}
        entry["val_loss"] = None
        if loss is not None:
            entry["val_loss"] = {
                **_summary(loss[name]),
                "delta_vs_control": paired_seed_difference(loss[name], loss[control], conf),
            }
        methods[name] = entry
    return {
        "control": control,
        "n_seeds": int(n_seeds),
        "n_clips": int(n_clips),
        "confidence": conf,
        "n_boot": int(n_boot),
        "seed": int(seed),
        "alpha": float(alpha),
        "power": float(power),
        "control_top1": _summary(ctl_top1),
        "subset": None
        if mask is None
        else {"name": subset_name, "num_clips": int(mask.sum()), "control_top1": _summary(_top1(ctl[:, mask]))},
        "control_train_val_gap": None if ctl_gap is None else _summary(ctl_gap),
        "control_val_loss": None if loss is None else _summary(loss[control]),
        "methods": methods,
    }


# ------------------------------------------------------------------------------------------------- markdown


def format_markdown(result: Mapping[str, Any]) -> str:
    """:func:`compare_methods`' result as Markdown: :func:`videotaf.analysis.render.format_markdown`, kept here
    for the code that imports it from this module."""
    # Imported on call: render reads this module's constants (verdict names, MAX_SEEDS), so it imports stats.
    from videotaf.analysis.render import format_markdown as render_markdown

    return render_markdown(result)
