"""videotaf.analysis.stats: every statistic against an independent computation (scipy, a hand loop, or a
hand-worked case), properties (swap symmetry, identical models), the verdict rule and the compare glue."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

from videotaf.analysis import stats
from videotaf.analysis.stats import (
    BETTER,
    NO_DIFFERENCE,
    ONE_SEED_NOTE,
    WORSE,
    compare_methods,
    format_markdown,
    mcnemar,
    minimum_detectable_difference,
    paired_bootstrap,
    paired_seed_difference,
    per_class_changes,
    verdict,
)

FEW = settings(max_examples=40, deadline=None)


def outcomes(b: int, c: int, both: int = 0, neither: int = 0, seeds: int = 1, seed: int = 0):
    """(S, N) correctness arrays with exactly b (method only), c (control only), both and neither pairs
    (``neither`` padded up so that the pairs fill S rows), in a fixed shuffled order."""
    neither += -(b + c + both + neither) % seeds
    m = np.array([1] * b + [0] * c + [1] * both + [0] * neither, dtype=bool)
    k = np.array([0] * b + [1] * c + [1] * both + [0] * neither, dtype=bool)
    order = np.random.default_rng(seed).permutation(m.size)
    return m[order].reshape(seeds, -1), k[order].reshape(seeds, -1)


def random_outcomes(seeds: int, clips: int, p_control: float, p_flip: float, seed: int):
    """Control correctness ~ Bernoulli(p_control); the method flips each outcome with probability p_flip."""
    rng = np.random.default_rng(seed)
    ctl = rng.random((seeds, clips)) < p_control
    met = ctl ^ (rng.random((seeds, clips)) < p_flip)
    return met, ctl


correct_pairs = hs.integers(1, 3).flatmap(
    lambda s: hs.integers(1, 12).flatmap(
        lambda n: hs.tuples(hnp.arrays(np.bool_, (s, n)), hnp.arrays(np.bool_, (s, n)))
    )
)
scores = hs.floats(0, 100, allow_nan=False)


# ------------------------------------------------------------------------------------------ seed difference


def test_seed_difference_hand_case():
    # deltas [1, 2, 3]: mean 2, sd 1, CI 2 ± t_{0.975,2}/sqrt(3); t_{0.975,2} = 4.3027 from a t table.
    r = paired_seed_difference([71.0, 62.0, 53.0], [70.0, 60.0, 50.0])
    assert r["per_seed"] == pytest.approx([1.0, 2.0, 3.0])
    assert r["mean"] == pytest.approx(2.0)
    assert r["sd"] == pytest.approx(1.0)
    assert r["n"] == 3
    half = 4.3027 / math.sqrt(3)
    assert r["ci95"] == pytest.approx([2.0 - half, 2.0 + half], abs=1e-4)


def test_seed_difference_matches_ttest_rel_and_t_interval():
    m = [72.4, 71.1, 73.0, 70.8, 72.2]
    c = [71.0, 71.5, 71.9, 70.1, 70.6]
    for conf in (0.95, 0.9):
        r = paired_seed_difference(m, c, confidence=conf)
        ci = st.ttest_rel(m, c).confidence_interval(conf)
        assert r["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-12)
        d = np.subtract(m, c)
        lo, hi = st.t.interval(conf, len(d) - 1, loc=d.mean(), scale=st.sem(d))
        assert r["ci95"] == pytest.approx([lo, hi], rel=1e-12)
        assert r["sd"] == pytest.approx(np.std(d, ddof=1))
        assert r["confidence"] == conf


def test_seed_difference_one_seed_has_no_spread():
    r = paired_seed_difference([71.5], [70.0])
    assert r["mean"] == pytest.approx(1.5)
    assert r["sd"] is None and r["ci95"] is None and r["n"] == 1


@pytest.mark.parametrize(
    "m, c, conf",
    [([1.0, 2.0], [1.0], 0.95), ([], [], 0.95), ([1.0, float("nan")], [1.0, 2.0], 0.95), ([1, 2], [1, 2], 1.0)],
)
def test_seed_difference_rejects_bad_input(m, c, conf):
    with pytest.raises(ValueError):
        paired_seed_difference(m, c, confidence=conf)


@FEW
@given(
    hs.integers(1, 6).flatmap(
        lambda n: hs.tuples(hs.lists(scores, min_size=n, max_size=n), hs.lists(scores, min_size=n, max_size=n))
    )
)
def test_seed_difference_swap_negates_and_ci_contains_mean(pair):
    m, c = pair
    r = paired_seed_difference(m, c)
    s = paired_seed_difference(c, m)
    assert s["mean"] == pytest.approx(-r["mean"], abs=1e-9)
    if r["ci95"] is None:
        assert s["ci95"] is None and len(m) == 1
    else:
        assert s["ci95"] == pytest.approx([-r["ci95"][1], -r["ci95"][0]], abs=1e-9)
        assert r["ci95"][0] - 1e-9 <= r["mean"] <= r["ci95"][1] + 1e-9
        assert s["sd"] == pytest.approx(r["sd"])


# ------------------------------------------------------------------------------------------------ bootstrap


def hand_bootstrap(m, c, n_boot, confidence, seed):
    """The documented resampling written out: per resample, per-seed top-1 on the drawn clips, then the mean."""
    rng = np.random.default_rng(seed)
    n = m.shape[1]
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        boot.append(np.mean([100 * (m[s, idx].mean() - c[s, idx].mean()) for s in range(m.shape[0])]))
    alpha = 1 - confidence
    return np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])


def test_bootstrap_matches_hand_loop_and_scipy():
    m, c = random_outcomes(3, 40, 0.6, 0.25, seed=1)
    r = paired_bootstrap(m, c, n_boot=300, confidence=0.9, seed=7)
    assert r["mean"] == pytest.approx(np.mean([100 * (m[s].mean() - c[s].mean()) for s in range(3)]))
    assert r["ci95"] == pytest.approx(hand_bootstrap(m, c, 300, 0.9, 7), rel=1e-12)

    # scipy resamples the clip indices (the paired design) and applies the per-seed statistic to them.
    def statistic(idx, axis=-1):
        idx = idx.astype(int)
        return (100 * (m[:, idx].mean(axis=-1) - c[:, idx].mean(axis=-1))).mean(axis=0)

    ref = st.bootstrap(
        (np.arange(40),),
        statistic,
        n_resamples=300,
        confidence_level=0.9,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(7),
    )
    ci = ref.confidence_interval
    assert r["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-12)
    assert (r["n_boot"], r["n_seeds"], r["n_clips"], r["seed"]) == (300, 3, 40, 7)
    assert r["ci95"][0] <= r["mean"] <= r["ci95"][1]


def test_bootstrap_chunking_does_not_change_the_result(monkeypatch):
    m, c = random_outcomes(2, 30, 0.5, 0.3, seed=2)
    whole = paired_bootstrap(m, c, n_boot=200, seed=3)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 30 * 7)  # 7 resamples per chunk, a ragged last chunk
    assert paired_bootstrap(m, c, n_boot=200, seed=3)["ci95"] == pytest.approx(whole["ci95"], rel=1e-12)


def test_bootstrap_deterministic_given_seed():
    m, c = random_outcomes(2, 50, 0.5, 0.3, seed=4)
    a = paired_bootstrap(m, c, n_boot=200, seed=11)
    b = paired_bootstrap(m.copy(), c.copy(), n_boot=200, seed=11)
    other = paired_bootstrap(m, c, n_boot=200, seed=12)
    assert a == b
    assert other["ci95"] != a["ci95"] and other["mean"] == a["mean"]


def test_bootstrap_accepts_one_seed_vectors_and_01_ints():
    m, c = random_outcomes(1, 25, 0.5, 0.3, seed=5)
    r2 = paired_bootstrap(m, c, n_boot=100)
    r1 = paired_bootstrap(m[0].astype(int), c[0].astype(int), n_boot=100)
    assert r1["ci95"] == r2["ci95"] and r1["n_seeds"] == 1


@pytest.mark.parametrize(
    "m, c, n_boot",
    [
        (np.ones((2, 5), bool), np.ones((2, 6), bool), 10),
        (np.full((1, 3), 2), np.ones((1, 3), int), 10),
        (np.full((1, 3), 0.5), np.ones((1, 3), bool), 10),
        (np.ones((1, 3), bool), np.ones((1, 3), bool), 0),
        (np.ones((1, 0), bool), np.ones((1, 0), bool), 10),
    ],
)
def test_bootstrap_rejects_bad_input(m, c, n_boot):
    with pytest.raises(ValueError):
        paired_bootstrap(m, c, n_boot=n_boot)


@FEW
@given(correct_pairs)
def test_bootstrap_swap_mirrors(pair):
    m, c = pair
    r = paired_bootstrap(m, c, n_boot=50, seed=1)
    s = paired_bootstrap(c, m, n_boot=50, seed=1)
    assert s["mean"] == pytest.approx(-r["mean"], abs=1e-9)
    assert s["ci95"] == pytest.approx([-r["ci95"][1], -r["ci95"][0]], abs=1e-9)


# -------------------------------------------------------------------------------------------------- McNemar


def test_mcnemar_hand_case_b3_c0():
    m, c = outcomes(3, 0, both=5, neither=2)
    r = mcnemar(m, c)
    assert (r["b"], r["c"], r["n_pairs"], r["test"]) == (3, 0, 10, "exact")
    assert r["p_value"] == pytest.approx(0.25)  # 2 * (1/2)^3
    assert r["discordance_rate"] == pytest.approx(0.3)


@pytest.mark.parametrize("b, c", [(1, 0), (5, 2), (2, 5), (7, 7), (12, 3), (0, 24), (13, 11)])
def test_mcnemar_exact_matches_binomtest(b, c):
    m, k = outcomes(b, c, both=6, neither=6, seeds=1)
    r = mcnemar(m, k)
    assert r["test"] == "exact" and (r["b"], r["c"]) == (b, c)
    assert r["p_value"] == pytest.approx(st.binomtest(b, b + c, 0.5).pvalue, rel=1e-12)


@pytest.mark.parametrize("b, c", [(30, 12), (12, 30), (25, 0), (14, 11), (200, 170)])
def test_mcnemar_chi2_matches_hand_formula(b, c):
    m, k = outcomes(b, c, both=20, neither=10, seeds=5)
    r = mcnemar(m, k)
    stat = max(abs(b - c) - 1, 0) ** 2 / (b + c)
    assert r["test"] == "chi2"
    assert r["statistic"] == pytest.approx(stat)
    assert r["p_value"] == pytest.approx(st.chi2.sf(stat, df=1), rel=1e-12)
    # chi-square with 1 df is a squared standard normal: a second, independent route to the same p.
    assert r["p_value"] == pytest.approx(2 * st.norm.sf(math.sqrt(stat)), rel=1e-9)


def test_mcnemar_chi2_hand_value():
    r = mcnemar(*outcomes(30, 12, both=8))
    assert r["statistic"] == pytest.approx(289 / 42)  # (18 - 1)^2 / 42
    assert r["p_value"] == pytest.approx(0.00871, abs=5e-5)


def test_mcnemar_threshold_and_no_discordance():
    assert mcnemar(*outcomes(12, 12, both=1))["test"] == "exact"  # b + c = 24
    assert mcnemar(*outcomes(13, 12))["test"] == "chi2"  # 25
    r = mcnemar(*outcomes(0, 0, both=4, neither=2, seeds=2))
    assert (r["b"], r["c"], r["p_value"], r["test"]) == (0, 0, 1.0, "exact")
    assert mcnemar(*outcomes(13, 13))["p_value"] == pytest.approx(1.0)  # b = c: the correction floors at 0


def test_mcnemar_pools_seeds_and_clips():
    m, c = random_outcomes(4, 30, 0.5, 0.2, seed=6)
    r = mcnemar(m, c)
    b = sum(int(m[s, i] and not c[s, i]) for s in range(4) for i in range(30))
    k = sum(int(c[s, i] and not m[s, i]) for s in range(4) for i in range(30))
    assert (r["b"], r["c"], r["n_pairs"]) == (b, k, 120)


@FEW
@given(correct_pairs)
def test_mcnemar_swap_swaps_b_and_c(pair):
    m, c = pair
    r, s = mcnemar(m, c), mcnemar(c, m)
    assert (s["b"], s["c"]) == (r["c"], r["b"])
    assert s["p_value"] == pytest.approx(r["p_value"])
    assert 0.0 <= r["p_value"] <= 1.0


# ------------------------------------------------------------------------------------------------------ MDD


def test_mdd_seeds_hand_case():
    # sd 2, n 4: (t_{0.975,3} + t_{0.80,3}) * 2 / 2 with the t-table values 3.1824 and 0.9785.
    r = minimum_detectable_difference(2.0, 4)
    assert r["seeds"] == pytest.approx(3.1824 + 0.9785, abs=2e-4)
    assert r["clips"] is None and r["mdd"] == r["seeds"]


@pytest.mark.parametrize("n", [4, 6, 10])
def test_mdd_seeds_has_about_the_power_asked(n):
    # Exact power of the two-sided paired t test at the MDD, from the noncentral t.
    sd = 1.3
    d = minimum_detectable_difference(sd, n)["seeds"]
    df, tc, nc = n - 1, st.t.ppf(0.975, n - 1), d * math.sqrt(n) / sd
    exact = st.nct.sf(tc, df, nc) + st.nct.cdf(-tc, df, nc)
    assert exact == pytest.approx(0.80, abs=0.03)


def test_mdd_seeds_needs_two_seeds():
    assert minimum_detectable_difference(None, 1)["seeds"] is None
    assert minimum_detectable_difference(1.0, 1)["seeds"] is None
    assert minimum_detectable_difference(None, 1)["mdd"] is None


@pytest.mark.parametrize("n, psi", [(200, 0.2), (5000, 0.05), (40, 0.5)])
def test_mdd_clips_solves_connor_sample_size(n, psi):
    delta = minimum_detectable_difference(None, 1, psi, n)["clips"] / 100
    za, zb = st.norm.ppf(0.975), st.norm.ppf(0.80)
    n_back = (za * math.sqrt(psi) + zb * math.sqrt(psi - delta**2)) ** 2 / delta**2
    assert n_back == pytest.approx(n, rel=1e-9)


def test_mdd_clips_large_n_is_the_normal_approximation():
    psi, n = 0.12, 10**7
    r = minimum_detectable_difference(None, 1, psi, n)
    assert r["clips"] == pytest.approx(100 * (1.959964 + 0.841621) * math.sqrt(psi / n), rel=1e-3)


def test_mdd_clips_has_about_the_power_asked():
    # Simulated power of the (uncorrected) McNemar z test, the test Connor's formula is for.
    n, psi = 2000, 0.15
    delta = minimum_detectable_difference(None, 1, psi, n)["clips"] / 100
    x = np.random.default_rng(0).multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=4000)
    b, c = x[:, 0], x[:, 1]
    z2 = (b - c) ** 2 / np.maximum(b + c, 1)
    assert np.mean(st.chi2.sf(z2, 1) < 0.05) == pytest.approx(0.80, abs=0.03)


def test_mdd_is_the_larger_one_and_validates():
    r = minimum_detectable_difference(0.5, 5, 0.2, 300)
    assert r["seeds"] is not None and r["clips"] is not None
    assert r["mdd"] == max(r["seeds"], r["clips"])
    assert minimum_detectable_difference(None, 1, 0.2, 3)["clips"] is None  # 3 < z^2 = 3.84: no root
    for kwargs in ({"discordance_rate": 1.5, "n_pairs": 10}, {"discordance_rate": 0.1, "n_pairs": 0}):
        with pytest.raises(ValueError):
            minimum_detectable_difference(None, 1, **kwargs)
    with pytest.raises(ValueError):
        minimum_detectable_difference(-1.0, 3)
    with pytest.raises(ValueError):
        minimum_detectable_difference(1.0, 3, power=1.0)


# -------------------------------------------------------------------------------------------------- verdict


@pytest.mark.parametrize(
    "seed_ci, boot_ci, expected",
    [
        ([0.2, 1.5], [0.1, 0.9], BETTER),
        ([-2.0, -0.1], [-1.0, -0.3], WORSE),
        ([0.2, 1.5], [-0.1, 0.9], NO_DIFFERENCE),
        ([-0.5, 1.5], [0.4, 0.9], NO_DIFFERENCE),  # the clip CI alone would say better: training noise wins
        ([-2.0, -0.1], [0.1, 0.5], NO_DIFFERENCE),
        ([0.0, 1.0], [0.5, 0.9], NO_DIFFERENCE),  # touching 0 is not above it
        (None, [0.1, 0.9], BETTER),  # one seed: the bootstrap CI alone
        (None, [-0.9, -0.1], WORSE),
        (None, [-0.1, 0.9], NO_DIFFERENCE),
        ([0.2, 1.5], None, BETTER),
    ],
)
def test_verdict_rule(seed_ci, boot_ci, expected):
    assert verdict(seed_ci, boot_ci) == expected


def test_verdict_requires_the_seed_ci_with_two_seeds():
    with pytest.raises(ValueError, match="seed interval is required"):
        verdict(None, [0.1, 0.9], n_seeds=3)
    assert verdict(None, [0.1, 0.9], n_seeds=1) == BETTER
    with pytest.raises(ValueError):
        verdict(None, None)
    with pytest.raises(ValueError):
        verdict([1.0, 0.0], None)


# ------------------------------------------------------------------------------------------------ per class


def test_per_class_hand_case():
    labels = [0, 0, 1, 1, 1, 2]
    control = [0, 1, 1, 0, 0, 2]  # class a 1/2, b 1/3, c 1/1
    method = [0, 0, 1, 1, 0, 1]  # class a 2/2, b 2/3, c 0/1
    r = per_class_changes(labels, method, control, ["a", "b", "c", "d"])
    assert list(r) == ["a", "b", "c", "d"]
    assert r["a"] == pytest.approx({"control": 50.0, "method": 100.0, "delta": 50.0, "num_clips": 2})
    assert r["b"] == pytest.approx({"control": 100 / 3, "method": 200 / 3, "delta": 100 / 3, "num_clips": 3})
    assert r["c"] == pytest.approx({"control": 100.0, "method": 0.0, "delta": -100.0, "num_clips": 1})
    assert r["d"] == {"control": None, "method": None, "delta": None, "num_clips": 0}


def test_per_class_pools_seeds():
    labels = np.array([0, 0, 1])
    method = np.array([[0, 1, 1], [0, 0, 0]])  # class 0: 1 + 2 of 4; class 1: 1 + 0 of 2
    control = np.array([[1, 1, 1], [1, 1, 1]])
    r = per_class_changes(labels, method, control, ["x", "y"])
    assert r["x"]["method"] == pytest.approx(75.0) and r["x"]["num_clips"] == 2
    assert r["y"]["method"] == pytest.approx(50.0) and r["y"]["delta"] == pytest.approx(-50.0)
    same = per_class_changes(np.stack([labels, labels]), method, control, ["x", "y"])
    assert same == r


def test_per_class_matches_a_counting_loop():
    # Random (S, N) predictions against a plain per-clip counting loop over seeds and clips.
    rng = np.random.default_rng(8)
    names = [f"class{k}" for k in range(6)]
    labels = rng.integers(0, 5, size=60)  # class5 has no clip
    pm, pc = rng.integers(0, 6, size=(2, 60)), rng.integers(0, 6, size=(2, 60))
    r = per_class_changes(labels, pm, pc, names)
    for k, name in enumerate(names):
        clips = [i for i in range(60) if labels[i] == k]
        assert r[name]["num_clips"] == len(clips)
        if not clips:
            assert r[name]["method"] is None and r[name]["delta"] is None
            continue
        hits_m = sum(int(pm[s, i] == k) for s in range(2) for i in clips)
        hits_c = sum(int(pc[s, i] == k) for s in range(2) for i in clips)
        assert r[name]["method"] == pytest.approx(100 * hits_m / (2 * len(clips)))
        assert r[name]["control"] == pytest.approx(100 * hits_c / (2 * len(clips)))
        assert r[name]["delta"] == pytest.approx(100 * (hits_m - hits_c) / (2 * len(clips)))


@pytest.mark.parametrize(
    "labels, names",
    [
        ([0, 3], ["a", "b"]),  # label out of range
        ([0, 1], ["a", "a"]),  # duplicate names
        ([[0, 1], [1, 0]], ["a", "b"]),  # labels differ between seeds
        ([0, 1, 1], ["a", "b"]),  # wrong length
    ],
)
def test_per_class_rejects_bad_input(labels, names):
    with pytest.raises(ValueError):
        per_class_changes(labels, [[0, 1], [0, 1]], [[1, 1], [0, 0]], names)


# -------------------------------------------------------------------------------------------------- compare


@pytest.fixture(scope="module")
def three_seeds():
    rng = np.random.default_rng(9)
    s, n = 3, 240
    labels = rng.integers(0, 4, size=n)
    plain = rng.random((s, n)) < 0.55
    correct = {
        "plain": plain,
        "taf": plain | (rng.random((s, n)) < 0.3),  # strictly more right: a clear win
        "ce_adv": plain ^ (rng.random((s, n)) < 0.1),  # noise around the control
    }
    mask = labels >= 2
    train = {"plain": [90.0, 91.0, 89.5], "taf": [88.0, 88.5, 87.0], "ce_adv": [92.0, 90.0, 91.0]}
    loss = {"plain": [1.2, 1.25, 1.22], "taf": [1.0, 1.05, 1.01], "ce_adv": [1.3, 1.2, 1.24]}
    result = compare_methods(
        correct,
        "plain",
        labels=labels,
        class_names=list("abcd"),
        subset_mask=mask,
        subset_name="long-term",
        train_top1=train,
        val_loss=loss,
        n_boot=200,
        seed=5,
    )
    return correct, labels, mask, train, loss, result


def test_compare_top_level(three_seeds):
    correct, _, mask, _, _, r = three_seeds
    assert list(r["methods"]) == ["taf", "ce_adv"]
    assert (r["control"], r["n_seeds"], r["n_clips"], r["n_boot"]) == ("plain", 3, 240, 200)
    assert r["control_top1"]["per_seed"] == pytest.approx(100 * correct["plain"].mean(axis=1))
    assert r["subset"]["num_clips"] == int(mask.sum()) and r["subset"]["name"] == "long-term"
    json.dumps(r, allow_nan=False)  # compare.json: plain JSON, no NaN


def test_compare_method_entry_is_the_documented_statistics(three_seeds):
    correct, _, _, _, _, r = three_seeds
    for name in ("taf", "ce_adv"):
        m, c = correct[name], correct["plain"]
        e = r["methods"][name]
        top_m, top_c = 100 * m.mean(axis=1), 100 * c.mean(axis=1)
        ci = st.ttest_rel(top_m, top_c).confidence_interval(0.95)
        assert e["delta_top1"]["ci95"] == pytest.approx([ci.low, ci.high])
        assert e["top1"]["mean"] == pytest.approx(top_m.mean()) and e["top1"]["sd"] == pytest.approx(top_m.std(ddof=1))
        assert e["bootstrap"]["ci95"] == pytest.approx(hand_bootstrap(m, c, 200, 0.95, 5))
        b = int((m & ~c).sum())
        k = int((~m & c).sum())
        assert (e["mcnemar"]["b"], e["mcnemar"]["c"]) == (b, k)
        assert e["mdd"]["seeds"] == pytest.approx(minimum_detectable_difference(e["delta_top1"]["sd"], 3)["seeds"])
        assert e["mdd"]["clips"] == pytest.approx(
            minimum_detectable_difference(None, 1, (b + k) / m.size, m.size)["clips"]
        )
        assert e["verdict"] == verdict(e["delta_top1"]["ci95"], e["bootstrap"]["ci95"])
        assert e["note"] is None
    assert r["methods"]["taf"]["verdict"] == BETTER
    assert r["methods"]["taf"]["mcnemar"]["c"] == 0


def test_compare_subset_per_class_gap_loss(three_seeds):
    correct, labels, mask, train, loss, r = three_seeds
    e = r["methods"]["ce_adv"]
    m, c = correct["ce_adv"][:, mask], correct["plain"][:, mask]
    sub = e["subset"]
    assert sub["num_clips"] == int(mask.sum())
    ci = st.ttest_rel(100 * m.mean(axis=1), 100 * c.mean(axis=1)).confidence_interval(0.95)
    assert sub["delta_top1"]["ci95"] == pytest.approx([ci.low, ci.high])
    assert sub["mcnemar"]["b"] == int((m & ~c).sum())
    assert r["subset"]["control_top1"]["mean"] == pytest.approx(100 * c.mean())

    sel = labels == 2  # class "c": its top-1 pooled over the seeds
    assert e["per_class"]["c"]["method"] == pytest.approx(100 * correct["ce_adv"][:, sel].mean())
    assert e["per_class"]["c"]["control"] == pytest.approx(100 * correct["plain"][:, sel].mean())
    assert e["per_class"]["c"]["num_clips"] == int(sel.sum())

    gap = np.array(train["ce_adv"]) - 100 * correct["ce_adv"].mean(axis=1)
    gap_c = np.array(train["plain"]) - 100 * correct["plain"].mean(axis=1)
    assert e["train_val_gap"]["per_seed"] == pytest.approx(gap)
    assert e["train_val_gap"]["sd"] == pytest.approx(gap.std(ddof=1))
    ci = st.ttest_rel(gap, gap_c).confidence_interval(0.95)
    assert e["train_val_gap"]["delta_vs_control"]["ci95"] == pytest.approx([ci.low, ci.high])
    assert e["val_loss"]["mean"] == pytest.approx(np.mean(loss["ce_adv"]))
    assert e["val_loss"]["delta_vs_control"]["mean"] == pytest.approx(np.mean(loss["ce_adv"]) - np.mean(loss["plain"]))


def test_compare_one_seed_notes_unmeasured_training_noise():
    m, c = random_outcomes(1, 300, 0.5, 0.0, seed=10)  # p_flip 0: the same outcomes...
    m[0, :60] = True  # ...except 60 clips only the method gets right
    c[0, :60] = False
    r = compare_methods({"plain": c, "taf": m}, n_boot=200)
    e = r["methods"]["taf"]
    assert e["delta_top1"]["ci95"] is None and e["mdd"]["seeds"] is None
    assert e["note"] == ONE_SEED_NOTE
    assert e["verdict"] == verdict(None, e["bootstrap"]["ci95"]) == BETTER
    assert e["mdd"]["mdd"] == e["mdd"]["clips"]
    assert r["control_top1"]["sd"] is None


@FEW
@given(correct_pairs)
def test_compare_identical_predictions(pair):
    a, _ = pair
    e = compare_methods({"plain": a, "taf": a.copy()}, n_boot=30)["methods"]["taf"]
    assert e["delta_top1"]["mean"] == 0.0
    assert e["bootstrap"]["mean"] == 0.0 and e["bootstrap"]["ci95"] == [0.0, 0.0]
    assert e["mcnemar"]["p_value"] == 1.0 and e["mcnemar"]["b"] == e["mcnemar"]["c"] == 0
    assert e["verdict"] == NO_DIFFERENCE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"control": "baseline"},
        {"subset_mask": np.ones(9, bool)},
        {"subset_mask": np.zeros(10, bool)},
        {"labels": np.zeros(10, int)},  # without class_names
        {"train_top1": {"plain": [1.0, 2.0]}},  # no entry for taf
        {"val_loss": {"plain": [1.0], "taf": [1.0]}},  # 1 value for 2 seeds
    ],
)
def test_compare_rejects_bad_input(kwargs):
    a = np.ones((2, 10), bool)
    with pytest.raises(ValueError):
        compare_methods({"plain": a, "taf": a}, n_boot=10, **kwargs)
    with pytest.raises(ValueError):
        compare_methods({"plain": a, "taf": np.ones((2, 11), bool)}, n_boot=10)
    with pytest.raises(ValueError):
        compare_methods({"plain": a}, n_boot=10)


# ------------------------------------------------------------------------------------------------- markdown


def test_markdown_shows_every_difference_with_its_ci(three_seeds):
    *_, r = three_seeds
    md = format_markdown(r)
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| method | top-1"))
    for col in ("(seeds)", "(clips)", "McNemar p", "MDD", "verdict", "95% CI"):
        assert col in header
    assert any(line.startswith("| plain (control) |") for line in lines)
    for name, e in r["methods"].items():
        row = next(line for line in lines if line.startswith(f"| {name} |"))
        d, b = e["delta_top1"], e["bootstrap"]
        assert f"{d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]" in row
        assert f"{b['mean']:+.2f} [{b['ci95'][0]:+.2f}, {b['ci95'][1]:+.2f}]" in row
        assert f"{e['top1']['mean']:.2f} ± {e['top1']['sd']:.2f}" in row
        # The verdict cell may go on with the seeds that would detect the difference (tests/test_compare_seeds.py).
        assert f"{e['mdd']['mdd']:.2f}" in row and f"| {e['verdict']}" in row and row.rstrip().endswith(" |")
    assert "### long-term" in md and "### Generalisation" in md
    gap = r["methods"]["taf"]["train_val_gap"]["delta_vs_control"]
    assert f"{gap['mean']:+.2f} [{gap['ci95'][0]:+.2f}, {gap['ci95'][1]:+.2f}]" in md


def test_markdown_one_seed():
    m, c = random_outcomes(1, 50, 0.5, 0.2, seed=12)
    r = compare_methods({"plain": c, "taf": m}, n_boot=50)
    md = format_markdown(r)
    row = next(line for line in md.splitlines() if line.startswith("| taf |"))
    assert "[n/a: 1 seed]" in row and "(1 seed)" in row
    assert ONE_SEED_NOTE in md
    assert "Generalisation" not in md and "###" not in md
