"""The cheaper TAF steps of ``videotaf.objective``: attacking a fraction of the batch, and the low-memory step.

``fraction`` = rho < 1: the attacked rows are attacked exactly as the standalone attack attacks that sub-batch,
the clean loss is over the whole batch and the adversarial loss the mean over the attacked rows; the pass
counts (``benchmarks/_common.count_passes``, weighted by each forward's share of the batch) show the reduced
work. ``low_memory``: the clean loss's backward runs before the adversarial forward; same gradients and passes,
about half the activation memory.
"""

from __future__ import annotations

import copy
import weakref
from contextlib import contextmanager, nullcontext

import pytest
import torch
import torch.nn.functional as F

from bench_common import common
from engine_toys import toy_config
from videotaf.attack import CrossEntropyAugmentation, TemporalAdversarialAugmentation
from videotaf.bn import adversarial_path, convert_dual_bn
from videotaf.config import ConfigError, load_config
from videotaf.engine import train as train_mod
from videotaf.engine.distributed import DistInfo
from videotaf.models.base import split_output
from videotaf.objective import build_objective, model_loss

from toy_models import AUX, MAIN, Toy2D, Toy3D

SEED = 5


def _setup(method, model_cls=Toy2D, batch=4, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = model_cls()
    objective = build_objective(method, generator=torch.Generator().manual_seed(SEED), **kwargs)
    if objective.needs_dual_bn:
        convert_dual_bn(model)
    clips = torch.rand(batch, 4, 3, 16, 16)
    labels = torch.arange(batch) % 5
    return model, objective, clips, labels


def _attack(method, model, steps):
    gen = torch.Generator().manual_seed(SEED)
    if method == "taf":
        return TemporalAdversarialAugmentation(model, steps=steps, generator=gen), gen
    return CrossEntropyAugmentation(model, steps=steps, generator=gen), gen


def _same_state(model, reference, exact):
    tol = dict(rtol=0, atol=0) if exact else dict(rtol=1e-5, atol=1e-7)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, **tol), name
    for (name, b), c in zip(model.named_buffers(), reference.buffers()):
        assert torch.allclose(b.float(), c.float(), **tol), name


# ------------------------------------------------------------------------------------------- fraction = 1
def _step_as_before(model, objective, clips, labels):
    """The fused / naive step as written before ``fraction`` and ``low_memory`` existed (one backward)."""
    attack = objective.attack
    x0 = clips.detach()
    if objective.fused:
        first = attack.first_step(model, x0, labels, training_forward=True)
        logits, aux_logits, adv = first.clean.logits, first.clean.aux_logits, first.adv
        if attack.steps > 1:
            adv = attack.continue_from(model, adv, x0, labels, first.targets, attack.steps - 1)
    else:
        adv = attack.run(model, x0, labels)
        logits, aux_logits = split_output(model(x0))
    loss_clean, _ = model_loss(model, logits, aux_logits, labels)
    with adversarial_path(model) if objective.needs_dual_bn else nullcontext():
        logits_adv, aux_adv = split_output(model(adv))
        loss_adv, _ = model_loss(model, logits_adv, aux_adv, labels)
    loss = objective.alpha * loss_clean + (1.0 - objective.alpha) * loss_adv
    loss.backward()
    return adv, loss


@pytest.mark.parametrize("fraction", [1.0, 0.9])  # 0.9 of 3 rows rounds to all 3: the full step, nothing drawn
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("method,steps,model_cls", [("taf", 1, Toy2D), ("taf", 3, Toy3D), ("advprop", 1, Toy3D)])
def test_fraction_one_is_bit_identical_to_the_full_step(fraction, fused, method, steps, model_cls):
    model, objective, clips, labels = _setup(
        method, model_cls, batch=3, steps=steps, fused=fused, random_start=not fused, fraction=fraction
    )
    reference = copy.deepcopy(model)
    _, ref_objective, _, _ = _setup(method, model_cls, batch=3, steps=steps, fused=fused, random_start=not fused)
    out = objective.step(model, clips, labels)
    adv, loss = _step_as_before(reference, ref_objective, clips, labels)
    assert out.adv_rows is None and torch.equal(out.adv_clips, adv)
    assert torch.equal(out.losses["total"], loss.detach())
    _same_state(model, reference, exact=True)
    # The same random stream afterwards: the full step draws no rows.
    assert torch.equal(objective.attack.generator.get_state(), ref_objective.attack.generator.get_state())


# ------------------------------------------------------------------------------------------- fraction < 1
def _fraction_reference(method, model, clips, labels, k, steps, alpha=0.7):
    """By hand: draw the rows, attack them standalone, then the clean loss on the batch and the adversarial one
    on the attacked rows, one backward."""
    attack, gen = _attack(method, model, steps)
    rows = torch.randperm(clips.shape[0], generator=gen)[:k].sort().values
    adv = attack(clips[rows], labels[rows])
    loss_clean = F.cross_entropy(model(clips), labels)
    with adversarial_path(model) if method != "ce_adv" else nullcontext():
        loss_adv = F.cross_entropy(model(adv), labels[rows])
    (alpha * loss_clean + (1 - alpha) * loss_adv).backward()
    return rows, adv, loss_clean, loss_adv


@pytest.mark.parametrize("low_memory", [False, True])
@pytest.mark.parametrize("method", ["taf", "advprop", "ce_adv"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("model_cls", [Toy2D, Toy3D])
def test_fraction_attacks_the_drawn_rows_as_the_standalone_attack(low_memory, method, steps, model_cls):
    model, objective, clips, labels = _setup(
        method, model_cls, batch=4, steps=steps, fraction=0.5, low_memory=low_memory
    )
    reference = copy.deepcopy(model)
    original = clips.clone()
    out = objective.step(model, clips, labels)
    rows, adv, loss_clean, loss_adv = _fraction_reference(method, reference, clips, labels, 2, steps)

    assert torch.equal(out.adv_rows, rows) and rows.shape == (2,) and out.counts == {"clips": 4, "attacked": 2}
    assert torch.equal(clips, original)  # the input is never written
    assert torch.equal(out.adv_clips[rows], adv)
    others = torch.ones(4, dtype=torch.bool)
    others[rows] = False
    assert torch.equal(out.adv_clips[others], clips[others])  # rows not drawn: the clean clips, untouched
    assert out.logits_adv.shape == (2, 5) and out.logits_clean.shape == (4, 5)
    assert torch.allclose(out.losses["clean"], loss_clean) and torch.allclose(out.losses["adv"], loss_adv)
    assert torch.isclose(out.losses["total"], 0.7 * out.losses["clean"] + 0.3 * out.losses["adv"])
    _same_state(model, reference, exact=False)


def test_a_quarter_of_a_batch_of_four_is_one_clip():
    model, objective, clips, labels = _setup("taf", batch=4, fraction=0.25)
    reference = copy.deepcopy(model)
    out = objective.step(model, clips, labels)
    rows, adv, _, _ = _fraction_reference("taf", reference, clips, labels, 1, 1)
    assert out.adv_rows.tolist() == rows.tolist() and torch.equal(out.adv_clips[rows], adv)
    _same_state(model, reference, exact=False)


@pytest.mark.parametrize(
    "fraction,batch,k",
    [(0.25, 8, 2), (0.2, 10, 2), (0.5, 3, 2), (0.25, 2, 1), (0.01, 4, 1), (0.75, 4, 3), (0.9, 3, None)],
)
def test_attacked_row_count(fraction, batch, k):
    # k = max(1, round(fraction * B)) with Python's round (half to even: 0.5 * 3 -> 2, 0.25 * 2 -> 0 -> 1);
    # None when that is every row.
    objective = build_objective("taf", fraction=fraction, generator=torch.Generator().manual_seed(0))
    rows = objective.attacked_rows(batch, torch.device("cpu"))
    if k is None:
        assert rows is None
    else:
        assert rows.dtype == torch.long and rows.shape == (k,) and rows.unique().numel() == k
        assert torch.equal(rows, rows.sort().values) and 0 <= rows.min() and rows.max() < batch


def test_the_row_draw_is_reproducible_and_comes_from_the_generator():
    def draws(generator, n=6):
        objective = build_objective("taf", fraction=0.25, generator=generator)
        return [objective.attacked_rows(8, torch.device("cpu")).tolist() for _ in range(n)]

    first = draws(torch.Generator().manual_seed(1))
    assert first == draws(torch.Generator().manual_seed(1))
    assert first != draws(torch.Generator().manual_seed(2))
    assert len({tuple(r) for r in first}) > 1  # a new draw every step
    gen = torch.Generator().manual_seed(1)
    assert first[0] == torch.randperm(8, generator=gen)[:2].sort().values.tolist()
    # Without a generator: the global RNG, reproducible under torch.manual_seed.
    torch.manual_seed(3)
    a = draws(None)
    torch.manual_seed(3)
    assert a == draws(None)
    # Whole steps too: same seeds, same rows, adversarial clips and gradients.
    outs = []
    for _ in range(2):
        model, objective, clips, labels = _setup("taf", batch=8, fraction=0.25)
        outs.append((objective.step(model, clips, labels), [p.grad.clone() for p in model.parameters()]))
    (o1, g1), (o2, g2) = outs
    assert torch.equal(o1.adv_rows, o2.adv_rows) and torch.equal(o1.adv_clips, o2.adv_clips)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


def test_fraction_validation():
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            build_objective("taf", fraction=bad)
    assert build_objective("taf").fraction == 1.0 and build_objective("taf").low_memory  # the default (Sec. cost)
    assert not build_objective("taf", low_memory=False).low_memory
    assert build_objective("plain", fraction=0.5).attack is None  # no adversarial path to thin out


def test_config_fields_reach_the_objective(tmp_path):
    cfg = load_config(None)
    assert cfg.adversarial.fraction == 1.0 and cfg.adversarial.low_memory is True
    for bad in ("0", "1.5", "-0.25"):
        with pytest.raises(ConfigError, match="adversarial.fraction") as err:
            load_config(None, [f"adversarial.fraction={bad}"])
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="adversarial.low_memory"):
        load_config(None, ["adversarial.low_memory=3"])
    cfg = toy_config(str(tmp_path), "taf")
    cfg.adversarial.fraction, cfg.adversarial.low_memory = 0.25, False
    objective = train_mod.build_training(cfg, DistInfo(), 1, load_weights=False).objective
    assert objective.fraction == 0.25 and not objective.low_memory


# ------------------------------------------------------------------------------------------- pass counts
def counted(objective, model, clips, labels):
    """``count_passes`` and each forward's batch size (a pre-hook beside the counter's)."""
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    try:
        with common.count_passes(model) as passes:
            objective.step(model, clips, labels)
    finally:
        handle.remove()
    assert len(sizes) == len(passes.forwards)
    return passes, sizes


def weighted_units(passes, sizes, batch):
    """Forward-equivalents with each forward (and every backward through it) weighted by its share of the batch."""
    share = [s / batch for s in sizes]
    kinds = [(f, k) for t in passes.traversals() for f, k in t]
    return sum(share) + sum(common.UNITS[k] * share[f] for f, k in kinds)


@pytest.mark.parametrize("low_memory", [False, True])
@pytest.mark.parametrize("steps", [1, 3])
def test_fraction_passes_see_only_the_attacked_rows(low_memory, steps):
    model, objective, clips, labels = _setup("taf", batch=4, steps=steps, fraction=0.5, low_memory=low_memory)
    passes, sizes = counted(objective, model, clips, labels)
    # K attack forwards on the 2 attacked rows (input requires grad), the clean forward on all 4, the
    # adversarial forward on the 2 adversarial rows through the auxiliary BN.
    assert sizes == [2] * steps + [4, 2]
    assert [f.layers for f in passes.forwards] == [MAIN] * (steps + 1) + [AUX]
    assert [f.input_requires_grad for f in passes.forwards] == [True] * steps + [False, False]
    attack = [t for k in range(steps) for t in ([(k, "partial")], [(k, "input")])]
    final = [[(steps, "full")], [(steps + 1, "full")]] if low_memory else [[(steps, "full"), (steps + 1, "full")]]
    assert passes.traversals() == attack + final
    # 3 + 5 rho at K = 1 (each further PGD step: 2 rho); here rho = 1/2.
    assert weighted_units(passes, sizes, 4) == pytest.approx(3 + 5 * 0.5 + 2 * 0.5 * (steps - 1))
    plain, plain_sizes = counted(build_objective("plain"), Toy2D(), clips, labels)
    assert weighted_units(plain, plain_sizes, 4) == 3


@pytest.mark.parametrize("steps,units", [(1, 7), (3, 11)])
def test_low_memory_step_has_the_same_passes_in_two_backwards(steps, units):
    model, objective, clips, labels = _setup("taf", batch=2, steps=steps, low_memory=True)
    passes, sizes = counted(objective, model, clips, labels)
    assert sizes == [2] * (steps + 1)
    assert [f.layers for f in passes.forwards] == [MAIN] * steps + [AUX]
    # The clean graph's parameter backward comes right after the first attack step, before the other PGD steps.
    attack = [t for k in range(steps) for t in ([(k, "partial")], [(k, "input")])]
    assert passes.traversals() == attack[:2] + [[(0, "full")]] + attack[2:] + [[(steps, "full")]]
    assert passes.units == units
    model, objective, clips, labels = _setup("taf", batch=2, steps=steps)
    assert counted(objective, model, clips, labels)[0].units == units


# ------------------------------------------------------------------------------------------- low memory
@pytest.mark.parametrize("method", ["taf", "advprop", "ce_adv"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("model_cls", [Toy2D, Toy3D])
def test_low_memory_step_has_the_fused_step_gradients(method, steps, model_cls):
    model, objective, clips, labels = _setup(method, model_cls, batch=3, steps=steps, low_memory=True)
    reference = copy.deepcopy(model)
    _, ref_objective, _, _ = _setup(method, model_cls, batch=3, steps=steps)
    out = objective.step(model, clips, labels)
    ref = ref_objective.step(reference, clips, labels)
    assert torch.equal(out.adv_clips, ref.adv_clips) and out.adv_rows is None
    assert out.losses.keys() == ref.losses.keys() == {"total", "clean", "adv"}
    for term in out.losses:
        assert torch.equal(out.losses[term], ref.losses[term]), term
    for name in ("logits_clean", "logits_adv"):
        assert torch.equal(getattr(out, name), getattr(ref, name)), name
    _same_state(model, reference, exact=False)


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_low_memory_calls_the_given_backward_for_both_terms(fraction):
    model, objective, clips, labels = _setup("taf", batch=4, low_memory=True, fraction=fraction, alpha=0.6)
    reference = copy.deepcopy(model)
    _, ref_objective, _, _ = _setup("taf", batch=4, fraction=fraction, alpha=0.6)
    seen: list[torch.Tensor] = []

    def scaled_backward(loss: torch.Tensor) -> None:  # what GradScaler's scaled backward looks like
        seen.append(loss.detach())
        (loss * 8.0).backward()

    out = objective.step(model, clips, labels, backward=scaled_backward)
    ref_objective.step(reference, clips, labels)
    assert len(seen) == 2
    assert torch.allclose(seen[0], 0.6 * out.losses["clean"]) and torch.allclose(seen[1], 0.4 * out.losses["adv"])
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(p.grad, 8.0 * q.grad, rtol=1e-5, atol=1e-6), name


def test_low_memory_with_a_grad_scaler():
    model, objective, clips, labels = _setup("taf", batch=2, low_memory=True)
    reference = copy.deepcopy(model)
    _, ref_objective, _, _ = _setup("taf", batch=2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    objective.step(model, clips, labels, backward=lambda loss: scaler.scale(loss).backward())
    scaler.unscale_(opt)
    ref_objective.step(reference, clips, labels)
    _same_state(model, reference, exact=False)


@contextmanager
def live_saved_peak():
    """Peak bytes of the distinct storages autograd has saved for backward that are still alive."""
    live: dict[int, int] = {}
    stats = {"peak": 0}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        key = id(st)
        if key not in live:
            live[key] = st.nbytes()
            weakref.finalize(st, live.pop, key, None)
            stats["peak"] = max(stats["peak"], sum(live.values()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield stats


def test_low_memory_frees_the_clean_graph_before_the_adversarial_forward():
    def peak(**kwargs):
        model, objective, clips, labels = _setup("taf", batch=8, **kwargs)
        with live_saved_peak() as stats:
            objective.step(model, clips, labels)
        return stats["peak"]

    def plain():
        torch.manual_seed(0)
        model, clips = Toy2D(), torch.rand(8, 4, 3, 16, 16)
        with live_saved_peak() as stats:
            build_objective("plain").step(model, clips, torch.arange(8) % 5)
        return stats["peak"]

    base = plain()
    assert peak(low_memory=False) / base == pytest.approx(2.0, abs=0.05)  # clean + adversarial graph
    assert peak() / base < 1.1  # one graph at a time: the default
    assert peak(fraction=0.25, low_memory=False) / base == pytest.approx(1.25, abs=0.05)  # clean + a quarter
    assert peak(fraction=0.25) / base < 1.1
