"""What a TAF step costs compared with a plain training step (issue: step cost; paper Sec. 4.3 "Computational Cost").

Measured in one process, methods interleaved round-robin so that drift hits all of them alike. Reports the median
step time of each schedule, its ratio to the plain step, and its pass-count floor: the forwards and backwards
of one step, counted with hooks (``_common.count_passes``) and weighed as in ``videotaf.objective`` (forward 1,
input-only backward 1, backward with parameter gradients 2), over the plain step's (7/3 for the fused schedule
at K = 1, 11/3 at K = 3, 8/3 for the naive one at K = 1). Memory: the GPU's peak allocation during a step, or
on the CPU the storages autograd saves for backward during a step (activation memory, parameters excluded).

On the CPU each model is measured twice, each time in a fresh process: with glibc's default allocator, which
unmaps every freed block above 32 MiB so that the next step faults its activations in again, and with freed
memory kept for reuse (``videotaf.engine.allocator.keep_freed_memory``, what ``videotaf train`` does on the CPU).

    python benchmarks/step_cost.py                 # small TSM and TSM-R50 on the CPU, updates BENCHMARKS.md
    python benchmarks/step_cost.py --quick         # a smoke run
    python benchmarks/step_cost.py --device cuda --amp --models tsm_r50_224 --batch 8
    python benchmarks/step_cost.py --models videomae_small --no-md --out benchmarks/results/step_cost_videomae.json

``videomae_small`` is a random ViT-Tiny-sized VideoMAE (hidden 192, 4 layers, 3 heads, patch 16, tubelet 2; needs
the ``hf`` extra) with auxiliary LayerNorms for TAF (``convert_dual_norm``): the transformer row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import ROOT, count_passes, header, update_section, write_json
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
    # name: (method, K, fused)
    "plain": ("plain", 1, True),
    "taf_k1": ("taf", 1, True),
    "taf_k1_naive": ("taf", 1, False),
    "taf_k3": ("taf", 3, True),
    "ce_adv_k1": ("ce_adv", 1, True),
}


def make(model_name: str, schedule: str, device: torch.device, batch: int | None, channels_last: bool):
    opts, frames, px, default_batch = MODELS[model_name]
    method, steps, fused = SCHEDULES[schedule]
    torch.manual_seed(0)
    model = (_videomae(frames, px) if "hf" in opts else build("tsm", 10, frames, **opts)).to(device).train()
    objective = build_objective(method, steps=steps, fused=fused, generator=torch.Generator().manual_seed(0))
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


def pass_units(model, objective, opt, clips, labels) -> int:
    """One step's forwards and backwards in forward-equivalents, counted (float32; gradients cleared after)."""
    opt.zero_grad(set_to_none=True)
    with count_passes(model) as passes:
        objective.step(model, clips, labels)
    opt.zero_grad(set_to_none=True)
    return passes.units


def activation_memory_mb(model, objective, opt, clips, labels, amp: str | None, device: torch.device) -> float:
    """Memory one step holds for backward: CUDA peak allocation on the GPU; on the CPU, the distinct storages
    autograd saves during the step (parameters excluded), a proxy of the activation memory that dominates."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        one_step(model, objective, opt, clips, labels, amp, device)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        one_step(model, objective, opt, clips, labels, amp, device)
    return sum(seen.values()) / 2**20


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


def main() -> None:
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
    p.add_argument("--pass-costs", type=int, metavar="PX", help="only measure forward/backward kernel costs at PX")
    p.add_argument(
        "--cpu-memory",
        choices=["both", "keep", "default"],
        default="both",
        help="CPU allocator: keep freed memory (videotaf.engine.allocator), glibc's default, or both in turn",
    )
    args = p.parse_args()
    if args.device == "cpu" and args.cpu_memory == "both" and not args.pass_costs:
        measure_both_allocators(args)
        return
    if args.device == "cpu" and args.cpu_memory != "default":  # --pass-costs: one process, memory kept
        keep_freed_memory()
    if args.pass_costs:
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
        return
    models = args.models or (["tsm_small"] if args.quick else ["tsm_small", "tsm_r50_224", "videomae_small"])
    reps = args.reps or (3 if args.quick else 10)
    device = torch.device(args.device)
    results = {}
    for model_name in models:
        runs = {s: make(model_name, s, device, args.batch, args.channels_last) for s in args.schedules}
        units = {s: pass_units(*run) for s, run in runs.items()}
        if "plain" not in units:
            model, _, opt, clips, labels = next(iter(runs.values()))
            units["plain"] = pass_units(model, build_objective("plain"), opt, clips, labels)
        times: dict[str, list[float]] = {s: [] for s in args.schedules}
        for rep in range(reps + 2):
            for s, run in runs.items():
                t = one_step(*run, args.amp, device)
                if rep >= 2:
                    times[s].append(t)
        plain = statistics.median(times["plain"]) if "plain" in times else None
        rows = {}
        for s in args.schedules:
            med = statistics.median(times[s])
            rows[s] = {
                "median_s": med,
                "ratio_to_plain": med / plain if plain else None,
                "pass_floor": units[s] / units["plain"],
            }
        if not args.no_memory:
            mem = {s: activation_memory_mb(*run, args.amp, device) for s, run in runs.items()}
            for s in args.schedules:
                rows[s]["peak_mb"] = mem[s]
                rows[s]["memory_ratio"] = mem[s] / mem["plain"] if mem.get("plain") else None
        _, frames, px, default_batch = MODELS[model_name]
        del runs
        results[model_name] = {"frames": frames, "pixels": px, "batch": args.batch or default_batch, "rows": rows}
        print(f"\n{model_name}: {frames} frames, {px} px, batch {args.batch or default_batch}, {reps} timed steps")
        for s, r in rows.items():
            mem_txt = f"  memory {r['peak_mb']:.0f} MB (x{r['memory_ratio']:.2f})" if r.get("memory_ratio") else ""
            print(
                f"  {s:13s} {r['median_s']:.3f} s  x{r['ratio_to_plain']:.2f}  (floor x{r['pass_floor']:.2f}){mem_txt}"
            )

    memory = args.cpu_memory if device.type == "cpu" else "cuda caching"
    payload = {"device": args.device, "amp": args.amp, "reps": reps, "cpu_memory": memory, "results": results}
    write_json(args.out, payload)
    if not args.no_md:
        section = "step_cost_gpu" if device.type == "cuda" else "step_cost_cpu"
        update_section(section, table([payload]))


def table(payloads: list[dict]) -> str:
    """The BENCHMARKS.md section: one row per (allocator, model, schedule)."""
    lines = [
        header(),
        "| allocator | model | frames x px x batch | schedule | median step | x plain | pass floor | step memory "
        "| x plain mem |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for payload in payloads:
        for model_name, res in payload["results"].items():
            for s, r in res["rows"].items():
                mem = f"{r['peak_mb']:.0f} MB" if "peak_mb" in r else "-"
                memr = f"{r['memory_ratio']:.2f}" if r.get("memory_ratio") else "-"
                lines.append(
                    f"| {payload['cpu_memory']} | {model_name} | {res['frames']} x {res['pixels']} x {res['batch']} "
                    f"| {s} | {r['median_s']:.3f} s | {r['ratio_to_plain']:.2f} | {r['pass_floor']:.2f} | {mem} "
                    f"| {memr} |"
                )
    return "\n".join(lines)


def measure_both_allocators(args: argparse.Namespace) -> None:
    """Run this script once per CPU allocator setting, each in a fresh process (mallopt is process-wide)."""
    payloads = []
    forwarded = sys.argv[1:]  # argparse keeps the last --cpu-memory / --out given, so the ones added below win
    with tempfile.TemporaryDirectory() as tmp:
        for memory in ("default", "keep"):
            out = Path(tmp) / f"{memory}.json"
            cmd = [sys.executable, __file__, *forwarded, "--cpu-memory", memory, "--no-md", "--out", str(out)]
            subprocess.run(cmd, check=True)
            payloads.append(json.loads(out.read_text()))
    write_json(args.out, {"runs": payloads})
    if not args.no_md:
        update_section("step_cost_cpu", table(payloads))


if __name__ == "__main__":
    main()
