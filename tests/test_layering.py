"""The package's layers, read from the source: nothing imports a layer above its own, and no
module imports another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "semclust"

# Lowest first. A module may import its own layer and the layers below it.
LAYERS: list[set[str]] = [
    {"semclust", "semclust.cache", "semclust.atomic", "semclust.metrics", "semclust.distributed"},
    {"semclust.data", "semclust.ops", "semclust.resources"},
    {"semclust.vocab"},
    {"semclust.encoders"},
    {"semclust.store", "semclust.naming"},
    {"semclust.engines", "semclust.ssl"},
    {"semclust.methods"},
    {"semclust.outputs", "semclust.feature_set"},
    {"semclust.workflow"},
    {"semclust.cli", "semclust.__main__"},
]


def layer_of(module: str) -> int:
    """The layer of ``module``: that of its longest listed prefix."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        for index, layer in enumerate(LAYERS):
            if prefix in layer:
                return index
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str | None = None) -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every semclust import in ``path`` (relative ones resolved
    against ``package``, by default the package ``path`` is in)."""
    found = []
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] == "semclust":
                found.append((node.lineno, base, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "semclust")
    return found


SOURCES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in SOURCES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_import(path: Path) -> None:
    own = layer_of(module_name(path))
    upward = [
        f"{path.relative_to(ROOT.parent)}:{line} imports {target} (layer {layer_of(target)} > {own})"
        for line, target, _ in imports(path)
        if layer_of(target) > own
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_from_another_module(path: Path) -> None:
    private = [
        f"{path.relative_to(ROOT.parent)}:{line} imports {name} from {target}"
        for line, target, names in imports(path)
        for name in names
        if name.startswith("_") and not name.startswith("__") and target != module_name(path)
    ]
    assert not private, "\n".join(private)


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    fake = ROOT / "encoders" / "base.py"
    assert layer_of("semclust.methods.kmeans") > layer_of(module_name(fake))
    assert layer_of("semclust.store.feature_store") == layer_of("semclust.naming")
    source = tmp_path / "probe.py"
    source.write_text("from semclust.methods.kmeans import _hidden\nimport semclust.cli.main\nfrom ..ops import knn\n")
    found = [(t, n) for _, t, n in imports(source, package="semclust.encoders")]
    assert found == [("semclust.methods.kmeans", ["_hidden"]), ("semclust.cli.main", []), ("semclust.ops", ["knn"])]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_500_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 500, f"{path.relative_to(ROOT.parent)} has {lines} lines: it holds more than one concept, split it"
