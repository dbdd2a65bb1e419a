"""The package's folders are its layers, and imports only go down: read from the source (every
import, at the top of a module or inside a function), no module imported."""

from __future__ import annotations

import ast
from pathlib import Path

from gesturelab import config

PACKAGE = config.REPO_ROOT / "gesturelab"
DOOR = "train_with_mlflow"  # the tracking door at the top level, re-exporting gesturelab.tracking
# Bottom to top; the root modules (config, errors) sit under every layer.
LAYERS = (
    "datasets",
    "features",
    "tracking",
    "models",
    "evaluation",
    "training",
    "serving",
    "studies",
    "cli",
)
# The one import that goes up, and why: MLflow's pyfunc loader of our Keras models runs in a
# Python that never imported gesturelab (``mlflow models serve``), and Keras finds our layers
# only once the module that registers them is imported.
UPWARD_ALLOWED = {(DOOR, "gesturelab.models.seq_models")}
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    found = {DOOR: config.REPO_ROOT / f"{DOOR}.py"}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(config.REPO_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    if module == DOOR:
        return LAYERS.index("tracking")
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    if module == "gesturelab.__main__":
        return LAYERS.index("cli")
    return -1  # gesturelab, config, errors: the root every layer stands on


def _imports(path: Path) -> list[tuple[str, int]]:
    """The project modules ``path`` imports (at any depth of the file), with their lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != "gesturelab":
                found.append((name, node.lineno))
    return found


GRAPH = {m: {t for t, _ in _imports(p) if t != m} for m, p in MODULES.items()}


def test_imports_only_go_down_the_layers():
    upward = [
        f"{path.relative_to(config.REPO_ROOT)}:{line} ({LAYERS[_layer(module)]}) imports "
        f"{target} ({LAYERS[_layer(target)]})"
        for module, path in MODULES.items()
        for target, line in _imports(path)
        if _layer(target) > _layer(module) and (module, target) not in UPWARD_ALLOWED
    ]
    assert not upward, "\n".join(upward)


def test_no_module_imports_another_that_imports_it_back():
    # A package imports its own modules (its __init__ re-exports), so package -> member
    # edges are not a circle.
    def follows(module):
        return {t for t in GRAPH[module] if not t.startswith(module + ".")}

    circles = []
    for start in MODULES:
        stack, seen = [(start, (start,))], set()
        while stack:
            module, path = stack.pop()
            for target in follows(module):
                if target == start:
                    circles.append(" -> ".join((*path, start)))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))
    assert not circles, "\n".join(sorted(set(circles)))


def test_only_the_tracking_door_imports_mlflow():
    importers = sorted(
        module
        for module, path in MODULES.items()
        if module != DOOR
        and not module.startswith("gesturelab.tracking")
        and any(
            (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "mlflow" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "mlflow")
            for n in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert not importers, importers


def test_no_module_is_over_the_size_limit():
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    over = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not over, over
