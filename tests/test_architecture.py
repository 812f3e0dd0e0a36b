"""The package's shape, checked: one job per module, data flowing one way, parts of a readable size.

Data flows grammar -> timing model -> Celery schedule -> jobs -> store -> scheduler -> operations -> HTTP.
A module may import the layers before it, never the ones after: the store never imports the
scheduler, the grammar knows nothing of Celery. The size limits are the guide from the
architecture issue (no class over ~350 lines, no function over ~60).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "celery_orchestra"
MODULES = sorted(path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts)

#: Each layer, and the layers (besides itself) it may import.
ALLOWED = {
    "errors": set(),
    "settings": {"errors"},
    "timing": {"errors"},
    "interfaces": {"errors", "timing", "jobs", "store"},
    "jobs": {"errors", "settings", "timing", "interfaces"},
    "store": {"errors", "settings", "timing", "jobs"},
    "beat": {"errors", "settings", "timing", "jobs", "store", "interfaces", "ops"},
    "ops": {"errors", "settings", "timing", "jobs", "store"},
    "web": {"errors", "settings", "timing", "jobs", "store", "ops"},
    "cli": {"ops", "web"},
    "__init__": {"errors", "timing", "beat", "ops"},
}
#: The timing language proper: no Celery (only ``schedule`` and ``firing`` are its Celery face).
CELERY_FREE = {"timing/parser.py", "timing/model.py", "timing/evaluate.py", "timing/zones.py", "errors.py"}
MAX_CLASS_LINES = 350
MAX_FUNCTION_LINES = 60


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_layers(path: Path) -> set[str]:
    """The package layers ``path`` imports, at run time or for type checking alike."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = path.relative_to(PACKAGE).parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("celery_orchestra."):
                    found.add(node.module.split(".")[1])
                continue
            base = list(package_parts[: len(package_parts) - (node.level - 1)])
            target = [*base, *(node.module.split(".") if node.module else [])]
            if target:
                found.add(target[0])
            else:  # "from . import x" at the top level
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("celery_orchestra."))
    return found - {layer_of(path)}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_module_imports_only_the_layers_before_it(path: Path) -> None:
    layer = layer_of(path)
    assert layer in ALLOWED, f"{layer}: add the new layer to ALLOWED"
    assert imported_layers(path) <= ALLOWED[layer], sorted(imported_layers(path) - ALLOWED[layer])


@pytest.mark.parametrize("name", sorted(CELERY_FREE))
def test_the_timing_language_knows_nothing_of_celery(name: str) -> None:
    tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert not {module for module in modules if module.split(".")[0] in ("celery", "kombu", "sqlalchemy")}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_every_module_says_what_it_owns(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring and len(docstring) > 30, f"{path.name} has no docstring saying what it owns"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_classes_and_functions_stay_readable(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    too_long = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if lines > limit:
                too_long.append(f"{node.name}: {lines} lines (guide: {limit})")
    assert not too_long
