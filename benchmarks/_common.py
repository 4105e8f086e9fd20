"""Shared by the benchmark scripts: machine description, JSON output, BENCHMARKS.md sections, and the
forward/backward pass counter behind the pass-count floors.

Each script owns one section of BENCHMARKS.md between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` and
rewrites only that section, with the exact command, the machine and the date.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine() -> str:
    """One line naming the hardware the numbers come from."""
    if torch.cuda.is_available():
        dev = f"GPU {torch.cuda.get_device_name(0)}"
    else:
        dev = f"CPU only, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    return f"{dev}; {platform.processor() or platform.machine()}; Python {platform.python_version()}; torch {torch.__version__}"


def command_line() -> str:
    """The command that reran this benchmark: ``python -m benchmarks.<name> ARGS`` (the script path otherwise)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    script = ["-m", spec.name] if spec is not None else [os.path.relpath(sys.argv[0], ROOT)]
    return "python " + " ".join(shlex.quote(a) for a in [*script, *sys.argv[1:]])


def header() -> str:
    today = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Command: `{command_line()}`  \nMachine: {machine()}  \nDate: {today}\n"


def write_json(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": command_line(), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def update_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the ``name`` section of BENCHMARKS.md with ``body``."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


# -- pass counting -------------------------------------------------------------------------------------------------
# Cost units of ``videotaf.objective``'s docstring: a forward = 1; a backward through a forward's whole depth
# (down to its first layer) = 2 when it computes parameter gradients, 1 when it only computes gradients with
# respect to the input (the attack's pass); a backward that stops above the first layer (the backward through the
# head for the Grad-CAM weights) is listed but costs 0.
UNITS = {"forward": 1, "full": 2, "input": 1, "partial": 0}


@dataclass
class ForwardPass:
    """One call of the model: the layers with parameters it ran (innermost module producing each output)."""

    layers: list[str] = field(default_factory=list)
    params: dict[str, list[str]] = field(default_factory=dict)  # layer -> its parameters' names
    input_requires_grad: bool = False  # the forward's graph reaches its input


@dataclass
class BackwardPass:
    """One backward call (``Tensor.backward`` or ``torch.autograd.grad``): what it reached, per forward."""

    reached: dict[int, set[str]] = field(default_factory=dict)  # forward index -> layers whose output got a grad
    reached_input: set[int] = field(default_factory=set)  # forwards whose input got a grad
    param_grads: set[str] = field(default_factory=set)  # parameters it computed a gradient for


@dataclass
class PassCount:
    """What :func:`count_passes` recorded: forwards in call order, backward calls in execution order."""

    forwards: list[ForwardPass] = field(default_factory=list)
    backwards: list[BackwardPass] = field(default_factory=list)

    def traversal_kind(self, backward: BackwardPass, f: int) -> str:
        """``full``, ``input`` or ``partial`` (see ``UNITS``) for ``backward`` through forward ``f``."""
        fwd = self.forwards[f]
        reached = backward.reached[f]
        if fwd.layers[0] not in reached:
            return "partial"
        params = {p for layer in reached for p in fwd.params[layer]}
        with_grad = params & backward.param_grads
        if with_grad == params:
            return "full"
        if not with_grad:
            return "input"
        raise ValueError(f"backward computed gradients for only some parameters: {sorted(params - with_grad)}")

    def traversals(self) -> list[list[tuple[int, str]]]:
        """Per backward call, ``(forward index, kind)`` for every forward whose graph it went through."""
        return [[(f, self.traversal_kind(b, f)) for f in sorted(b.reached)] for b in self.backwards]

    @property
    def units(self) -> int:
        """The step's cost in forward-equivalents."""
        kinds = [k for t in self.traversals() for _, k in t]
        return UNITS["forward"] * len(self.forwards) + sum(UNITS[k] for k in kinds)


class _PassRecorder:
    """The hooks of :func:`count_passes` and what they share: the forward in progress, the backward calls seen."""

    def __init__(self, model: nn.Module) -> None:
        self.counts = PassCount()
        self.tasks: dict[int, BackwardPass] = {}
        self.current: list[int] = []  # index of the forward in progress
        self.outputs: list[torch.Tensor] = []  # layer outputs of the forward in progress
        self.owners = {
            name: [f"{name}.{p}" if name else p for p, _ in m.named_parameters(recurse=False)]
            for name, m in model.named_modules()
        }
        self.handles: list = []  # every hook, removed on exit (tensor hooks too: the input outlives the context)

    def attach(self, model: nn.Module) -> None:
        layers = {name: m for name, m in model.named_modules() if self.owners[name]}
        self.handles += [model.register_forward_pre_hook(self.pre_forward)]
        self.handles += [model.register_forward_hook(self.post_forward)]
        self.handles += [m.register_forward_hook(self.layer_forward(name)) for name, m in layers.items()]
        self.handles += [p.register_hook(self.on_param_grad(n)) for n, p in model.named_parameters() if p.requires_grad]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def backward_pass(self) -> BackwardPass:
        # The engine's id of the running backward call (private, present since torch 2.0; -1 outside a backward).
        task = torch._C._current_graph_task_id()
        if task not in self.tasks:
            self.tasks[task] = BackwardPass()
            self.counts.backwards.append(self.tasks[task])
        return self.tasks[task]

    def on_layer_grad(self, f: int, name: str):
        def hook(grad: torch.Tensor) -> None:
            self.backward_pass().reached.setdefault(f, set()).add(name)

        return hook

    def on_input_grad(self, f: int):
        def hook(grad: torch.Tensor) -> None:
            b = self.backward_pass()
            b.reached.setdefault(f, set())
            b.reached_input.add(f)

        return hook

    def on_param_grad(self, name: str):
        def hook(grad: torch.Tensor) -> None:
            self.backward_pass().param_grads.add(name)

        return hook

    def pre_forward(self, module: nn.Module, args: tuple) -> None:
        fwd = ForwardPass()
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.requires_grad and torch.is_grad_enabled():
            fwd.input_requires_grad = True
            self.handles.append(x.register_hook(self.on_input_grad(len(self.counts.forwards))))
        self.current.append(len(self.counts.forwards))
        self.counts.forwards.append(fwd)

    def post_forward(self, module: nn.Module, args: tuple, output: object) -> None:
        self.current.pop()
        self.outputs.clear()

    def layer_forward(self, name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            if not self.current or not isinstance(output, torch.Tensor):
                return
            if any(o is output for o in self.outputs):  # a wrapper returning its child's output (dual BN): the child's
                return
            self.outputs.append(output)
            f = self.current[-1]
            fwd = self.counts.forwards[f]
            fwd.layers.append(name)
            fwd.params[name] = self.owners[name]
            if output.requires_grad:
                self.handles.append(output.register_hook(self.on_layer_grad(f, name)))

        return hook


@contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCount]:
    """Record every forward of ``model`` (the unwrapped module) and every backward through those forwards.

    Forwards: a forward pre-hook on ``model``. Backwards: tensor hooks on the outputs of the layers that own
    parameters and on the input, and on the parameters themselves, grouped by autograd graph task (one task is
    one ``backward()`` or ``autograd.grad`` call).
    """
    recorder = _PassRecorder(model)
    try:
        recorder.attach(model)
        yield recorder.counts
    finally:
        recorder.remove()
