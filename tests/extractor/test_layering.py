"""The package map holds: every import points down the layers of docs/architecture.md.

Pure logic over the source files (no import is executed): each ``import`` and ``from ..
import`` of the project's packages is resolved to the module it names and checked against
the layer of the module that holds it.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECT = ("common", "extractor", "tableinator", "graphinator", "demoapi")

# extractor's sub-packages, lowest first: a layer imports only the layers before it.
# `extractor.metrics` (the Prometheus counters) is a leaf every layer counts into.
EXTRACTOR_LAYERS = (
    ("extractor.metrics",),
    ("extractor.ledger", "extractor.dlq"),
    ("extractor.pacing",),
    ("extractor.sources",),
    ("extractor.reporting",),
)
# the other top-level packages: which of the project's packages each may import
ALLOWED = {
    "common": {"common"},
    "demoapi": {"demoapi"},
    "tableinator": {"common", "tableinator"},
    "graphinator": {"common", "graphinator"},
    "extractor": {"common", "extractor"},
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def known_modules() -> set[str]:
    return {module_name(p) for top in PROJECT for p in (ROOT / top).rglob("*.py")}


def imported(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The project modules a file imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named = {f"{node.module}.{a.name}" for a in node.names}
            found |= named & modules or {node.module}
    return {name for name in found if name.split(".")[0] in PROJECT}


def rank(module: str) -> int:
    """The layer of an extractor module; the top level (CLI, API, the run) is above all."""
    for level, packages in enumerate(EXTRACTOR_LAYERS):
        if any(module == p or module.startswith(p + ".") for p in packages):
            return level
    return len(EXTRACTOR_LAYERS)


def upward(module: str, target: str) -> bool:
    """Whether ``module`` importing ``target`` breaks the layering."""
    top, target_top = module.split(".")[0], target.split(".")[0]
    if target_top not in ALLOWED[top]:
        return True
    if top != "extractor" or target_top != "extractor":
        return False
    here, there = rank(module), rank(target)
    if here == len(EXTRACTOR_LAYERS):
        return False  # the top level may import any layer, and its own modules
    return there > here or (there == here and not same_package(module, target))


def same_package(module: str, target: str) -> bool:
    return module.split(".")[:2] == target.split(".")[:2]


def violations(modules: set[str]) -> list[str]:
    found = []
    for top in PROJECT:
        for path in sorted((ROOT / top).rglob("*.py")):
            module = module_name(path)
            found += [
                f"{module} imports {target}"
                for target in sorted(imported(path, modules))
                if upward(module, target)
            ]
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert violations(known_modules()) == []


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("extractor.sources.fetch", "extractor.reporting.progress"),
        ("extractor.ledger.store", "extractor.pacing.ratelimit"),
        ("extractor.pacing.shared_limit", "extractor.worker"),
        ("extractor.ledger.store", "extractor.dlq.queues"),
        ("extractor.metrics", "extractor.ledger.snapshot"),
        ("common.spec", "extractor.planner"),
        ("tableinator.sink", "graphinator.sink"),
    ],
)
def test_an_upward_import_is_caught(module: str, target: str) -> None:
    assert upward(module, target)


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("extractor.sources.fetch", "extractor.pacing.ratelimit"),
        ("extractor.sources.fetch", "extractor.metrics"),
        ("extractor.reporting.report_data", "extractor.dlq.queues"),
        ("extractor.ledger.leases", "extractor.ledger.store"),
        ("extractor.worker", "extractor.slice_run"),
        ("graphinator.sink", "common.batch"),
    ],
)
def test_a_downward_import_is_allowed(module: str, target: str) -> None:
    assert not upward(module, target)


def test_the_checker_sees_from_package_import_module() -> None:
    modules = known_modules()
    assert "extractor.metrics" in imported(ROOT / "extractor/sources/fetch.py", modules)
