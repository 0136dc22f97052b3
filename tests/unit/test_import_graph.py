"""The layers hold: no module of projects/ imports, even inside a function, a module that imports it back.

The graph is read from the source with `ast` (every `import` and `from … import`
at any depth, `if TYPE_CHECKING:` blocks included), not from a running import,
so an import deferred into a function to dodge a cycle is still a cycle here.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "projects"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of projects/ it imports (a package import counts as its __init__)."""
    paths = [p for p in (ROOT / PACKAGE).rglob("*.py") if "migrations" not in p.parts]
    modules = {_module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                # `from . import backups` names a module; `from .x import f` names x.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in targets:
                # `import a.b.c` runs a, a.b and a.b.c: the longest one that is ours is the edge.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
                    # Importing a.b runs a's __init__ first.
                    parent = target.rpartition(".")[0]
                    while parent:
                        if parent in modules and parent != name and not name.startswith(parent + "."):
                            graph[name].add(parent)
                        parent = parent.rpartition(".")[0]
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as [a, b, …, a], or [] when the graph is acyclic."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_graph_reader_sees_imports_inside_functions():
    # The checker itself can fail: a deferred import is an edge.
    graph = import_graph()
    assert "projects.runtime.docker" in graph["projects.runtime"]


def test_find_cycle_reports_a_cycle_it_is_given():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_module_in_projects_imports_itself_back():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " → ".join(cycle)


# --- the layers (DESIGN.md, "Layers"): each module's, lowest first -----------------------

BOTTOM = {"projects", "projects.apps", "projects.models", "projects.records", "projects.crypto", "projects.wakeup", "projects.pgconf", "projects.recipes", "projects.tls"}


def layer(module: str) -> int:
    """0 the data and pure helpers, 1 the engine adapters, 2 the stack's contract, 3 selectors, 4 services, 5 the edges."""
    if module in BOTTOM:
        return 0
    for prefix, rank in (("projects.runtime", 1), ("projects.stack", 2), ("projects.selectors", 3), ("projects.services", 4)):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return 5


def test_the_layer_reader_ranks_a_module_of_each_layer():
    assert [layer(m) for m in ("projects.models", "projects.runtime.docker", "projects.stack.spec", "projects.selectors")] == [0, 1, 2, 3]
    assert [layer(m) for m in ("projects.services.backups.steps", "projects.views.page", "projects.api.projects")] == [4, 5, 5]


def test_no_module_imports_one_of_a_layer_above_it():
    upward = [f"{a} → {b}" for a, targets in import_graph().items() for b in targets if layer(a) < layer(b)]
    assert not upward, "imports from a lower layer to an upper one: " + ", ".join(sorted(upward))


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def test_the_engine_adapters_read_neither_the_models_nor_the_settings():
    # What an adapter needs comes in as arguments; only runtime/__init__ picks one from the settings.
    adapters = [p for p in (ROOT / PACKAGE / "runtime").glob("*.py") if p.name != "__init__.py"]
    assert adapters
    reading = {
        p.name: sorted(n for n in _imported_names(p) if n.startswith(("projects.models", "django.conf", "projects.stack", "projects.services")))
        for p in adapters
    }
    assert not {name: found for name, found in reading.items() if found}


def test_services_are_feature_packages_beside_at_most_six_shared_modules():
    services = ROOT / PACKAGE / "services"
    flat = sorted(p.name for p in services.glob("*.py") if p.name != "__init__.py")
    packages = sorted(p.name for p in services.iterdir() if (p / "__init__.py").exists())
    assert len(flat) <= 6, flat
    assert {"lifecycle", "backups", "upgrades", "pool", "placement", "settings", "fleet", "operations"} <= set(packages)


def test_no_module_is_over_600_lines():
    paths = [p for folder in ("projects", "controlplane") for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts]
    long = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > 600}
    assert not long, long
