"""What a TAF step costs compared with a plain training step (issue: step cost; paper Sec. 4.3 "Computational Cost").

Measured in one process, methods interleaved round-robin so that drift hits all of them alike. Reports the median
step time of each schedule, its ratio to the plain step, and its pass-count floor: the forwards and backwards
of one step, counted with hooks (``_common.count_passes``) and weighed as in ``videotaf.objective`` (forward 1,
input-only backward 1, backward with parameter gradients 2; each forward, and every backward through it, weighted
by its share of the batch), over the plain step's (7/3 for the fused schedule at K = 1, 11/3 at K = 3, 8/3 for
the naive one at K = 1, 1 + 5 rho / 3 when a fraction rho of the batch is attacked, 7/3 for the low-memory
step). Memory, two numbers: the peak activation memory of a step (the GPU's peak allocation above what was
allocated before it; on the CPU the peak of the storages autograd saved for backward that are still alive,
parameters excluded), and on both devices everything autograd saved during the step (what the CPU column
showed before the low-memory step existed: it cannot tell when a graph is freed).

On the CPU each model is measured twice, each time in a fresh process: with glibc's default allocator, which
unmaps every freed block above 32 MiB so that the next step faults its activations in again, and with freed
memory kept for reuse (``videotaf.engine.allocator.keep_freed_memory``, what ``videotaf train`` does on the CPU).

    python -m benchmarks.step_cost                 # small TSM and TSM-R50 on the CPU, updates BENCHMARKS.md
    python -m benchmarks.step_cost --quick         # a smoke run
    python -m benchmarks.step_cost --device cuda --amp --models tsm_r50_224 --batch 8
    python -m benchmarks.step_cost --models videomae_small --no-md --out benchmarks/results/step_cost_videomae.json

``videomae_small`` is a random ViT-Tiny-sized VideoMAE (hidden 192, 4 layers, 3 heads, patch 16, tubelet 2; needs
the ``hf`` extra) with auxiliary LayerNorms for TAF (``convert_dual_norm``): the transformer row.

    python -m benchmarks.step_cost --models tsm_small tsm_r50_112 --batch 4 --reps 12 \
        --schedules plain taf_k1 taf_k1_frac25 taf_k1_lowmem --section step_cost_cheaper \
        --out benchmarks/results/step_cost_cheaper.json            # the cheaper steps (fraction 0.25: 1 clip of 4)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

import torch

from benchmarks._common import ROOT, UNITS, count_passes, header, update_section, write_json
from videotaf.bn import convert_dual_norm
from videotaf.engine.allocator import keep_freed_memory
from videotaf.models import build
from videotaf.objective import build_objective

MODELS = {
    # name: (build options, frames, pixels, batch)
    "tsm_small": (dict(depth=18, width=0.25), 8, 64, 8),
    "tsm_r50_112": (dict(depth=50), 8, 112, 2),
    "tsm_r50_224": (dict(depth=50), 8, 224, 2),
    "videomae_small": (dict(hf="videomae"), 8, 112, 4),
}
SCHEDULES = {
    # name: (method, K, fused, fraction, low_memory)
    "plain": ("plain", 1, True, 1.0, False),
    "taf_k1": ("taf", 1, True, 1.0, False),
    "taf_k1_naive": ("taf", 1, False, 1.0, False),
    "taf_k3": ("taf", 3, True, 1.0, False),
    "ce_adv_k1": ("ce_adv", 1, True, 1.0, False),
    "taf_k1_frac25": ("taf", 1, True, 0.25, False),
    "taf_k1_lowmem": ("taf", 1, True, 1.0, True),
}


def make(model_name: str, schedule: str, device: torch.device, batch: int | None, channels_last: bool):
    opts, frames, px, default_batch = MODELS[model_name]
    method, steps, fused, fraction, low_memory = SCHEDULES[schedule]
    torch.manual_seed(0)
    model = (_videomae(frames, px) if "hf" in opts else build("tsm", 10, frames, **opts)).to(device).train()
    objective = build_objective(
        method,
        steps=steps,
        fused=fused,
        generator=torch.Generator().manual_seed(0),
        fraction=fraction,
        low_memory=low_memory,
    )
    if objective.needs_dual_bn:
        convert_dual_norm(model)  # BatchNorm for TSM, LayerNorm for the transformer
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    b = batch or default_batch
    clips = torch.rand(b, frames, 3, px, px, device=device)
    labels = torch.randint(0, 10, (b,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    return model, objective, opt, clips, labels


def _videomae(frames: int, px: int) -> torch.nn.Module:
    import transformers

    from videotaf.models import from_hf

    cfg = transformers.VideoMAEConfig(
        image_size=px, patch_size=16, num_frames=frames, tubelet_size=2, hidden_size=192, num_hidden_layers=4,
        num_attention_heads=3, intermediate_size=768, num_labels=10,
    )  # fmt: skip
    return from_hf(transformers.VideoMAEForVideoClassification(cfg))


def one_step(model, objective, opt, clips, labels, amp: str | None, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=getattr(torch, amp or "bfloat16"), enabled=amp is not None):
        objective.step(model, clips, labels)
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def pass_units(model, objective, opt, clips, labels) -> float:
    """One step's forwards and backwards in forward-equivalents, counted (float32; gradients cleared after).

    Each forward, and every backward through it, counts by the share of the batch it ran on (a ``fraction``
    step's attack and adversarial forwards see k of B clips); for every other schedule the shares are 1.
    """
    opt.zero_grad(set_to_none=True)
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        with count_passes(model) as passes:
            objective.step(model, clips, labels)
    finally:
        handle.remove()
    opt.zero_grad(set_to_none=True)
    share = [n / clips.shape[0] for n in sizes]
    kinds = [(f, kind) for traversal in passes.traversals() for f, kind in traversal]
    return sum(share) + sum(UNITS[kind] * share[f] for f, kind in kinds)


def activation_memory_mb(
    model, objective, opt, clips, labels, amp: str | None, device: torch.device
) -> tuple[float, float]:
    """``(peak, saved)`` MiB of one step. ``peak``: the activation memory the step holds at its worst, CUDA's
    peak allocation above the allocation before the step on the GPU; on the CPU the peak of the distinct
    storages autograd saved for backward that are still alive (parameters excluded; a storage counts until it
    is freed, whoever holds it). ``saved``: every distinct storage autograd saved during the step, freed or not
    (a storage freed and another allocated at its address count twice)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    live: dict[int, int] = {}
    peak, saved = [0], [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        key = id(st)  # the storage's Python object lives exactly as long as the storage
        if st.data_ptr() in params or key in live:
            return t
        live[key] = st.nbytes()
        weakref.finalize(st, live.pop, key, None)
        saved[0] += st.nbytes()
        peak[0] = max(peak[0], sum(live.values()))
        return t

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        one_step(model, objective, opt, clips, labels, amp, device)
    if device.type == "cuda":
        peak[0] = torch.cuda.max_memory_allocated() - base
    return peak[0] / 2**20, saved[0] / 2**20


def pass_costs(device: torch.device, px: int, reps: int) -> dict[str, float]:
    """Seconds of one forward, a full backward and an input-only backward (TA's attack pass) of TSM-R50, 8 frames
    at ``px`` pixels, batch 2: the kernel costs behind the pass-count floors (which assume backward = 2 forwards)."""
    from videotaf.attack import TemporalAdversarialAugmentation

    torch.manual_seed(0)
    model = build("tsm", 10, 8, depth=50).to(device).train()
    clips = torch.rand(2, 8, 3, px, px, device=device)
    labels = torch.tensor([1, 2], device=device)
    ta = TemporalAdversarialAugmentation(model)

    def forward() -> None:
        model(clips.clone().requires_grad_(True))

    def full_step() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(clips), labels).backward()

    def attack_pass() -> None:
        x = clips.clone().requires_grad_(True)
        logits, feats, _ = ta.forward_with_features(model, x)
        ta.input_gradient(x, logits, feats, labels, labels)

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(reps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return min(times)

    f, full, att = best(forward), best(full_step), best(attack_pass)
    bwd, inp = (full - f) / f, (att - f) / f
    # TAF at K = 1: clean forward + input backward + two full backwards + adversarial forward, over a plain step.
    floor = (1 + inp + 2 * bwd + 1) / (1 + bwd)
    return {"forward_s": f, "backward_over_forward": bwd, "input_backward_over_forward": inp, "taf_k1_floor": floor}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, choices=sorted(MODELS))
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=list(SCHEDULES))
    p.add_argument("--reps", type=int, default=None, help="timed steps per schedule (after 2 warm-up steps)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--amp",
        nargs="?",
        const="float16",
        choices=["float16", "bfloat16"],
        help="autocast dtype (bare --amp: float16, as the engine's CUDA AMP; TA then scales its own gradients)",
    )
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "step_cost.json"))
    p.add_argument("--no-md", action="store_true", help="do not rewrite BENCHMARKS.md")
    p.add_argument(
        "--section", default=None, help="BENCHMARKS.md section to rewrite (default: step_cost_cpu / step_cost_gpu)"
    )
    p.add_argument("--pass-costs", type=int, metavar="PX", help="only measure forward/backward kernel costs at PX")
    p.add_argument(
        "--cpu-memory",
        choices=["both", "keep", "default"],
        default="both",
        help="CPU allocator: keep freed memory (videotaf.engine.allocator), glibc's default, or both in turn",
    )
    return p.parse_args()


def report_pass_costs(args: argparse.Namespace) -> None:
    """``--pass-costs PX``: :func:`pass_costs` printed, written next to ``--out`` and (unless ``--no-md``) in
    BENCHMARKS.md."""
    res = pass_costs(torch.device(args.device), args.pass_costs, args.reps or 3)
    print(json.dumps(res, indent=2))
    write_json(args.out.replace(".json", "_passes.json"), {"pixels": args.pass_costs, **res})
    if not args.no_md:
        update_section(
            "pass_costs",
            f"{header()}\nTSM-R50, 8 frames at {args.pass_costs} px, batch 2, best of {args.reps or 3}, CPU memory "
            f"{'default' if args.cpu_memory == 'default' else 'kept'}: forward "
            f"{res['forward_s']:.3f} s; a full backward costs {res['backward_over_forward']:.2f} forwards and TA's "
            f"input-only backward {res['input_backward_over_forward']:.2f}. With these kernel costs the fused TAF "
            f"step at K = 1 cannot go below **{res['taf_k1_floor']:.2f}x** a plain step (the 7/3 floor assumes a "
            "backward costs two forwards).",
        )


def median_times(runs: dict[str, tuple], reps: int, amp: str | None, device: torch.device) -> dict[str, float]:
    """Median seconds of one step per schedule: ``reps`` timed steps after 2 warm-up ones, the schedules
    interleaved round-robin so that drift hits all of them alike."""
    times: dict[str, list[float]] = {s: [] for s in runs}
    for rep in range(reps + 2):
        for s, run in runs.items():
            t = one_step(*run, amp, device)
            if rep >= 2:
                times[s].append(t)
    return {s: statistics.median(t) for s, t in times.items()}


def measure_model(model_name: str, args: argparse.Namespace, reps: int, device: torch.device) -> dict[str, dict]:
    """One model's row per schedule: median step time, its ratio to the plain step, the pass floor and (unless
    ``--no-memory``) the peak and saved activation memory with their ratios to the plain step's."""
    runs = {s: make(model_name, s, device, args.batch, args.channels_last) for s in args.schedules}
    units = {s: pass_units(*run) for s, run in runs.items()}
    if "plain" not in units:
        model, _, opt, clips, labels = next(iter(runs.values()))
        units["plain"] = pass_units(model, build_objective("plain"), opt, clips, labels)
    medians = median_times(runs, reps, args.amp, device)
    plain = medians.get("plain")
    rows = {
        s: {"median_s": med, "ratio_to_plain": med / plain if plain else None, "pass_floor": units[s] / units["plain"]}
        for s, med in medians.items()
    }
    if not args.no_memory:
        mem = {s: activation_memory_mb(*run, args.amp, device) for s, run in runs.items()}
        for s in args.schedules:
            (peak, saved), plain_mem = mem[s], mem.get("plain")
            rows[s]["peak_mb"], rows[s]["saved_mb"] = peak, saved
            rows[s]["memory_ratio"] = peak / plain_mem[0] if plain_mem else None
            rows[s]["saved_ratio"] = saved / plain_mem[1] if plain_mem else None
    return rows


def print_rows(model_name: str, result: dict, reps: int) -> None:
    print(
        f"\n{model_name}: {result['frames']} frames, {result['pixels']} px, batch {result['batch']}, {reps} timed steps"
    )
    for s, r in result["rows"].items():
        mem_txt = (
            f"  peak {r['peak_mb']:.0f} MB (x{r['memory_ratio']:.2f}), saved {r['saved_mb']:.0f} MB "
            f"(x{r['saved_ratio']:.2f})"
            if r.get("memory_ratio")
            else ""
        )
        print(f"  {s:14s} {r['median_s']:.3f} s  x{r['ratio_to_plain']:.2f}  (floor x{r['pass_floor']:.2f}){mem_txt}")


def main() -> None:
    args = parse_args()
    if args.device == "cpu" and args.cpu_memory == "both" and not args.pass_costs:
        measure_both_allocators(args)
        return
    if args.device == "cpu" and args.cpu_memory != "default":  # --pass-costs: one process, memory kept
        keep_freed_memory()
    if args.pass_costs:
        report_pass_costs(args)
        return
    models = args.models or (["tsm_small"] if args.quick else ["tsm_small", "tsm_r50_224", "videomae_small"])
    reps = args.reps or (3 if args.quick else 10)
    device = torch.device(args.device)
    results = {}
    for model_name in models:
        _, frames, px, default_batch = MODELS[model_name]
        rows = measure_model(model_name, args, reps, device)
        results[model_name] = {"frames": frames, "pixels": px, "batch": args.batch or default_batch, "rows": rows}
        print_rows(model_name, results[model_name], reps)

    memory = args.cpu_memory if device.type == "cpu" else "cuda caching"
    payload = {"device": args.device, "amp": args.amp, "reps": reps, "cpu_memory": memory, "results": results}
    write_json(args.out, payload)
    if not args.no_md:
        section = args.section or ("step_cost_gpu" if device.type == "cuda" else "step_cost_cpu")
        update_section(section, table([payload]))


def table(payloads: list[dict]) -> str:
    """The BENCHMARKS.md section: one row per (allocator, model, schedule)."""
    lines = [
        header(),
        "| allocator | model | frames x px x batch | schedule | median step | x plain | pass floor "
        "| peak act. memory | x plain | saved in step | x plain |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for payload in payloads:
        for model_name, res in payload["results"].items():
            for s, r in res["rows"].items():
                mem = f"{r['peak_mb']:.0f} MB" if "peak_mb" in r else "-"
                memr = f"{r['memory_ratio']:.2f}" if r.get("memory_ratio") else "-"
                saved = f"{r['saved_mb']:.0f} MB" if "saved_mb" in r else "-"
                savedr = f"{r['saved_ratio']:.2f}" if r.get("saved_ratio") else "-"
                lines.append(
                    f"| {payload['cpu_memory']} | {model_name} | {res['frames']} x {res['pixels']} x {res['batch']} "
                    f"| {s} | {r['median_s']:.3f} s | {r['ratio_to_plain']:.2f} | {r['pass_floor']:.2f} | {mem} "
                    f"| {memr} | {saved} | {savedr} |"
                )
    return "\n".join(lines + goals(payloads))


def goals(payloads: list[dict]) -> list[str]:
    """Issue 13's goals for the cheaper steps, where both rows were measured: a step attacking a quarter of
    the batch at most 1.4x a plain step, the low-memory step's peak activation memory at most 1.3x."""
    out = []
    for payload in payloads:
        for model_name, res in payload["results"].items():
            rows = res["rows"]
            if "taf_k1_frac25" in rows and rows["taf_k1_frac25"].get("ratio_to_plain"):
                r = rows["taf_k1_frac25"]
                verdict = "met" if r["ratio_to_plain"] <= 1.4 else "**not met**"
                out.append(
                    f"- {payload['cpu_memory']}, {model_name}: fraction 0.25 costs {r['ratio_to_plain']:.2f}x a "
                    f"plain step (goal <= 1.4x: {verdict}; pass floor {r['pass_floor']:.2f}x)."
                )
            if "taf_k1_lowmem" in rows and rows["taf_k1_lowmem"].get("memory_ratio"):
                r = rows["taf_k1_lowmem"]
                verdict = "met" if r["memory_ratio"] <= 1.3 else "**not met**"
                vs = (
                    f"; its time is {r['median_s'] / rows['taf_k1']['median_s']:.2f}x the fused step's"
                    if "taf_k1" in rows
                    else ""
                )
                out.append(
                    f"- {payload['cpu_memory']}, {model_name}: the low-memory step's peak activation memory is "
                    f"{r['memory_ratio']:.2f}x a plain step's (goal <= 1.3x: {verdict}){vs}."
                )
    return ["", *out] if out else []


def measure_both_allocators(args: argparse.Namespace) -> None:
    """Run this script once per CPU allocator setting, each in a fresh process (mallopt is process-wide)."""
    payloads = []
    forwarded = sys.argv[1:]  # argparse keeps the last --cpu-memory / --out given, so the ones added below win
    with tempfile.TemporaryDirectory() as tmp:
        for memory in ("default", "keep"):
            out = Path(tmp) / f"{memory}.json"
            cmd = [sys.executable, "-m", "benchmarks.step_cost", *forwarded]
            cmd += ["--cpu-memory", memory, "--no-md", "--out", str(out)]
            # From the root, where the package is; every path forwarded is absolute (ROOT-based defaults, tmp).
            subprocess.run(cmd, check=True, cwd=ROOT)
            payloads.append(json.loads(out.read_text()))
    write_json(args.out, {"runs": payloads})
    if not args.no_md:
        update_section(args.section or "step_cost_cpu", table(payloads))


if __name__ == "__main__":
    main()
