"""No import circle in the house (issue 31): the modules of ``toolbox`` import one another
in one direction only.

The graph is read from the source with ``ast`` (nothing is imported): an edge for every
``import toolbox...`` and ``from toolbox... import ...`` (relative ones too), to the
submodule when a name imported from a package is one, else to the package (its
``__init__``). A package ``__init__`` that re-exports its submodules has edges to them like
any other module. Imports under ``if TYPE_CHECKING:`` are left out (they never run). Not
modelled: that importing ``a.b`` first runs ``a/__init__``; that edge would make every
re-exporting package a circle of its own.

Two checks:

- module level (what runs when a module is imported): no circle at all;
- with the imports inside functions added: no circle either, but for the ones listed in
  ``LEFT_TO_OWNERS``. An import deferred into a function still ties the two modules to each
  other; it only hides the circle from the interpreter (``nets/fields.py`` and
  ``nets/network.py`` did that until issue 31).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "toolbox"

# circles closed by an import inside a function, known and left to the work that owns those
# modules: a circle is let through only when every module in it is covered by one entry (a
# module name, or a package prefix ending in "."). Remove an entry once its circle is gone.
LEFT_TO_OWNERS: dict[str, set[str]] = {}  # none: issue 31 left no circle in the house


def _module_names() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """(import statement, whether it is inside a function) for every import that can run."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
    todo: list[tuple[ast.AST, bool]] = [(tree, False)]
    while todo:
        node, deferred = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, deferred))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                todo.extend((orelse, deferred) for orelse in child.orelse)
            else:
                inside = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                todo.append((child, inside))
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if is_package else module.rpartition(".")[0]
            parts = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = []
    for name in names:
        while name and name not in known:  # `import toolbox.nets.spec` names the module itself
            name = name.rpartition(".")[0]
        if name and name != module:
            found.append(name)
    return found


def import_graph(with_deferred: bool) -> dict[str, set[str]]:
    """{module: the toolbox modules it imports}, module-level imports only unless ``with_deferred``."""
    known = _module_names()
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = {target for node, deferred in _imports(tree) if with_deferred or not deferred
                         for target in _targets(module, path.name == "__init__.py", node, known)}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one module (Tarjan, iteratively), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    part = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        part.append(member)
                        if member == node:
                            break
                    if len(part) > 1:
                        found.append(sorted(part))
    return sorted(found)


def _left_to_owners(circle: list[str]) -> bool:
    def covered(module: str, names: set[str]) -> bool:
        return any(module == name or (name.endswith(".") and module.startswith(name)) for name in names)

    return any(all(covered(module, names) for module in circle) for names in LEFT_TO_OWNERS.values())


def test_the_graph_sees_imports_of_every_kind():
    graph = import_graph(with_deferred=True)
    assert "toolbox.nets.network" in graph["toolbox.nets"]  # a package re-exporting its submodule
    assert "toolbox.nets.spec" in graph["toolbox.nets.network"]  # from toolbox.nets.spec import ModelSpec
    assert "toolbox.nets.ablation" in graph["toolbox.nets.network"]  # deferred, inside a method
    assert "toolbox.nets.ablation" not in import_graph(with_deferred=False)["toolbox.nets.network"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_at_module_level():
    assert circles(import_graph(with_deferred=False)) == []


def test_no_import_circle_hidden_in_a_function():
    found = [circle for circle in circles(import_graph(with_deferred=True)) if not _left_to_owners(circle)]
    assert found == [], f"modules that import each other (one of them inside a function): {found}"
