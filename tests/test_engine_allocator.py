"""CPU memory reuse (videotaf.engine.allocator): large freed blocks come back without new page faults."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from videotaf.engine.allocator import keep_freed_memory

# Runs in a fresh interpreter: mallopt() changes the whole process, and the "before" numbers need glibc's defaults.
_PROBE = """
import json, resource, torch
from videotaf.engine.allocator import keep_freed_memory

torch.set_num_threads(1)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 1))
x = torch.randn(16, 64, 112, 112)  # 49 MiB activations: above glibc's largest dynamic mmap threshold (32 MiB)

def faults_of_one_step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    net.zero_grad(set_to_none=True)
    net(x).square().mean().backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def steady_state(warmup):
    for _ in range(warmup):
        faults_of_one_step()
    return [faults_of_one_step() for _ in range(3)]

default = steady_state(3)
ok = keep_freed_memory()
# The heap takes a few steps to grow to the step's peak after glibc's defaults released it (seen: up to 5).
kept = steady_state(8)
print(json.dumps({"ok": ok, "default": default, "kept": kept}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_freed_activations_are_reused_without_page_faults():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["ok"] is True
    activation_pages = 16 * 64 * 112 * 112 * 4 // 4096
    # glibc default: every step maps its large activations afresh and faults in every page of them.
    assert min(r["default"]) > 2 * activation_pages
    # Kept: the freed blocks are served again from the heap, already faulted in (the heap may still grow by a
    # block now and then while it settles).
    assert min(r["kept"]) < 0.01 * min(r["default"])
    assert sum(r["kept"]) < 0.2 * sum(r["default"])


@pytest.mark.parametrize("bad", [0, -5, 2**31])
def test_threshold_must_fit_a_c_int(bad):
    with pytest.raises(ValueError, match="mmap_threshold"):
        keep_freed_memory(bad)
