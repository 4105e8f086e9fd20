"""The package's layers import only downwards, with no import cycles (ARCHITECTURE.md).

Read from the source with ``ast`` (every import, at module level or inside a function), so an upward import
fails here even when it is never executed by another test.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "videotaf"

# Bottom to top. A module may import modules of its own layer or of a layer below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("videotaf.errors", "videotaf.io")),
    ("data", ("videotaf.data",)),
    ("models", ("videotaf.models",)),
    ("core", ("videotaf.cam", "videotaf.bn", "videotaf.attack", "videotaf.objective")),
    ("config", ("videotaf.config",)),
    ("engine", ("videotaf.engine",)),
    ("analysis", ("videotaf.analysis",)),
    ("integrations", ("videotaf.integrations",)),
    # The command line (every subcommand, the demo) lives in one package, so each folder holds one layer.
    ("app", ("videotaf.cli", "videotaf.__main__", "videotaf")),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    assert best is not None, module
    return best[0]


def imports_of(path: Path, module: str | None = None) -> list[tuple[str, int, bool]]:
    """``(imported videotaf module, line, at module level)`` for every import of a videotaf module."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [base] + [f"{base}.{a.name}" for a in node.names]
            names = [n for n in names if _is_module(n)] or [base]
        else:
            continue
        for name in names:
            if name == "videotaf" or name.startswith("videotaf."):
                found.append((name, node.lineno, id(node) in top_level))
    return found


def _is_module(name: str) -> bool:
    parts = name.split(".")
    if parts[0] != "videotaf":
        return False
    path = SRC.parent.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


SOURCES = sorted(SRC.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in SOURCES:
        layer_of(module_name(path))


def test_each_package_folder_holds_one_layer():
    """The folders show the layers: every module of a subpackage sits in that subpackage's layer."""
    for folder in sorted({p.parent for p in SOURCES if p.parent != SRC}):
        layers = {LAYERS[layer_of(module_name(p))][0] for p in SOURCES if p.parent == folder}
        assert len(layers) == 1, f"{folder.relative_to(SRC.parent)} holds modules of layers {sorted(layers)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_point_down(path: Path):
    me = module_name(path)
    mine = layer_of(me)
    upward = [
        f"{path.relative_to(SRC.parent)}:{line} imports {name} ({LAYERS[layer_of(name)][0]} above {LAYERS[mine][0]})"
        for name, line, _ in imports_of(path)
        if layer_of(name) > mine
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for path in SOURCES:
        me = module_name(path)
        graph[me] = {name for name, _, top in imports_of(path) if top and name != me and name in _all_modules()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodules is how packages re-export; not a cycle.
            if node != "videotaf" and nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                if not all(c == nxt or c.startswith(nxt + ".") or nxt.startswith(c + ".") for c in cycle):
                    raise AssertionError("import cycle: " + " -> ".join(cycle))
            elif state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node)


def _all_modules() -> set[str]:
    return {module_name(p) for p in SOURCES}


def test_layers_import_in_order():
    """Importing each layer's modules bottom-up works: no module needs one above it to be imported first."""
    for _, prefixes in LAYERS:
        for prefix in prefixes:
            for path in SOURCES:
                name = module_name(path)
                if (name == prefix or name.startswith(prefix + ".")) and not name.endswith("__main__"):
                    importlib.import_module(name)


def test_the_check_catches_an_upward_import(tmp_path: Path):
    probe = tmp_path / "base.py"
    probe.write_text((SRC / "models" / "base.py").read_text() + "\n\ndef late():\n    from ..engine.train import fit\n")
    found = {n: top for n, _, top in imports_of(probe, "videotaf.models.base")}
    assert found.get("videotaf.engine.train") is False  # found, inside a function, relative form resolved
    assert layer_of("videotaf.engine.train") > layer_of("videotaf.models.base")
    assert layer_of("videotaf.cli.data") == layer_of("videotaf.cli") > layer_of("videotaf.data.check")
