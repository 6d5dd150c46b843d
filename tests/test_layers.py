"""The package tree keeps the architecture of docs/design.md: imports only go downward.

Every import statement counts (module level, inside functions, under ``TYPE_CHECKING``): a
lower layer that names a higher one, or two modules that import each other through any chain,
fail here. The checker is tested on a planted upward import too, so it cannot pass vacuously.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module may import its own layer and those before it, never a later one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        ("vrepo.errors", "vrepo.config", "vrepo._sync", "vrepo._startup", "vrepo._progress"),
    ),
    ("storage", ("vrepo.storage",)),
    ("format", ("vrepo.format",)),
    ("engine", ("vrepo.engine",)),
    ("zarr", ("vrepo.zarr",)),
    ("dask", ("vrepo.dask",)),
    ("importing", ("vrepo.importing",)),
    ("xarray", ("vrepo.xarray",)),
    ("fsspec view", ("vrepo.fsspec",)),
    ("cli", ("vrepo.cli",)),
    ("testing", ("vrepo.testing",)),
    ("package root", ("vrepo",)),
]


def layer_of(module: str) -> int:
    """Index in LAYERS of the most specific prefix that contains ``module``."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")
    return best


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name (packages as their name)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path], package: str) -> set[str]:
    """The package's own modules that ``path`` imports, wherever the statement stands."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
            out.update(t for t in targets if t.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != package:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                out.add(submodule if submodule in modules else source)
    out.discard(name)
    return {m for m in out if m in modules}


def violations(root: Path, package: str = "vrepo") -> list[str]:
    """Upward imports and import cycles in ``package``, as readable lines."""
    modules = module_names(root, package)
    graph = {name: imports_of(name, path, modules, package) for name, path in modules.items()}
    found = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(name):
                found.append(
                    f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} "
                    f"({LAYERS[layer_of(target)][0]}), a higher layer"
                )
    found.extend(f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [[*group, group[0]] for group in groups]


def test_vrepo_imports_only_go_downward_and_never_in_a_circle():
    assert violations(SRC) == []


def test_every_layer_named_in_the_design_exists():
    modules = module_names(SRC, "vrepo")
    for _, prefixes in LAYERS:
        for prefix in prefixes:
            assert prefix in modules, f"{prefix} is in LAYERS but not in the tree"


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "statement",
    [
        "from vrepo.engine.session import Session\n",
        "import vrepo.engine.session\n",
        "if TYPE_CHECKING:\n    from vrepo.engine.session import Session\n",
        "def f():\n    from vrepo.engine import session\n",
        "from ..engine.session import Session\n",
    ],
)
def test_a_planted_upward_import_is_caught(tmp_path, statement):
    root = _plant(
        tmp_path,
        {
            "vrepo/__init__.py": "",
            "vrepo/errors.py": "",
            "vrepo/storage/__init__.py": "",
            "vrepo/storage/local.py": "from vrepo.errors import VRepoError\n" + statement,
            "vrepo/engine/__init__.py": "",
            "vrepo/engine/session.py": "from vrepo.storage import local\n",
        },
    )
    found = violations(root)
    assert any("vrepo.storage.local (storage) imports vrepo.engine.session" in v for v in found)
    assert any(v.startswith("import cycle:") for v in found)


def test_a_cycle_inside_one_layer_is_caught(tmp_path):
    root = _plant(
        tmp_path,
        {
            "vrepo/__init__.py": "",
            "vrepo/engine/__init__.py": "",
            "vrepo/engine/a.py": "from vrepo.engine.b import x\n",
            "vrepo/engine/b.py": "from vrepo.engine import c\n",
            "vrepo/engine/c.py": "import vrepo.engine.a\n",
        },
    )
    assert violations(root) == [
        "import cycle: vrepo.engine.a -> vrepo.engine.b -> vrepo.engine.c -> vrepo.engine.a"
    ]
