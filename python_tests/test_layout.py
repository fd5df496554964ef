"""The package's layout: every import (at any depth, inside functions too) points down the flow
data → models → training → unlearning → evaluation → experiments → CLI, with no cycle, and
the top level exposes the public API (docs/ARCHITECTURE.md §1)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ifru_ext

PACKAGE = Path(ifru_ext.__file__).resolve().parent
REPOSITORY = Path(__file__).resolve().parent.parent

# The flow, lowest first. A module may import from its own layer or any lower one.
LAYERS = {
    "ops": 0, "graph": 0, "plain": 0, "metrics": 0, "_C": 0,
    "data": 1,
    "models": 2,
    "training": 3,
    "unlearning": 4,
    "evaluation": 5,
    "experiments": 6,
    "cli": 7, "demo": 7, "__main__": 7,
}
TOP = 8  # ifru_ext/__init__.py: the public API, above everything


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
# Compiled modules (ifru_ext._C): imported like any module, no source to walk.
EXTENSIONS = {"ifru_ext." + path.name.split(".")[0] for path in PACKAGE.glob("*.so")} | {"ifru_ext._C"}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports_of(name: str) -> set[str]:
    """Package modules ``name`` imports, resolving relative imports and ``from pkg import submodule``."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    base = name if is_package(name) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                source = ".".join(anchor + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES.keys() | EXTENSIONS else source
                       for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target.split(".")[0] == "ifru_ext")
    return {target for target in found if target in MODULES or target in EXTENSIONS} - {name}


def layer(name: str) -> int:
    parts = name.split(".")
    return TOP if len(parts) == 1 else LAYERS[parts[1]]


GRAPH = {name: imports_of(name) for name in MODULES}


def test_every_module_has_a_layer():
    unknown = sorted({name.split(".")[1] for name in MODULES if "." in name} - set(LAYERS))
    assert not unknown, f"add these to LAYERS (and docs/ARCHITECTURE.md §1): {unknown}"


def test_imports_point_down_the_flow():
    upward = [(name, target) for name, targets in GRAPH.items() for target in targets
              if layer(target) > layer(name)]
    assert not upward, f"imports against the flow: {upward}"


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH.get(name, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target in GRAPH and state.get(target) is None:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(GRAPH):
        if state.get(name) is None:
            visit(name, [name])


def test_the_walk_sees_nested_and_relative_imports():
    """The checker itself: a function-level import and a relative one are found."""
    assert "ifru_ext.unlearning.influence" in GRAPH["ifru_ext.demo"]
    assert "ifru_ext.data" in GRAPH["ifru_ext.training.train"]
    assert "ifru_ext.unlearning.base" in GRAPH["ifru_ext.unlearning.sharded.method"]


def test_public_api():
    for name in ("load_dataset", "build_model", "train", "TrainConfig", "unlearn", "UnlearnConfig", "RetrainConfig",
                 "FinetuneConfig", "AltEraserConfig", "ShardedConfig", "load_checkpoint", "save_checkpoint",
                 "evaluate", "propagate", "hvp", "importance", "csr_transpose"):
        assert name in ifru_ext.__all__ and hasattr(ifru_ext, name), name
    assert sorted(ifru_ext.__all__) == sorted(set(ifru_ext.__all__))


def test_every_cited_document_exists():
    """Comments and docs cite files of this repository only."""
    cited_missing = []
    for path in [*PACKAGE.rglob("*.py"), *REPOSITORY.glob("csrc/**/*"), *REPOSITORY.glob("*.md"),
                 *REPOSITORY.glob("docs/*.md"), *REPOSITORY.glob("reports/**/*.md")]:
        if path.is_file() and "DESIGN.md" in path.read_text(errors="replace"):
            cited_missing.append(str(path.relative_to(REPOSITORY)))
    assert not cited_missing, f"cite docs/ARCHITECTURE.md instead of DESIGN.md in {cited_missing}"
    assert (REPOSITORY / "docs" / "ARCHITECTURE.md").is_file()
