"""The layers: envs/ (the world) imports nothing from ram/ (the agent), no module of either imports itself back
through others, and function-local imports of the project load only the heavy optional packages' modules."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Project modules that may be imported inside a function: they load matplotlib (ram.plots) or Pillow (envs.render).
HEAVY = {"ram.plots", "envs.render"}


def imports() -> dict[str, list[tuple[str, bool]]]:
    """Every module of ram/ and envs/ -> the project modules it imports, each with whether the import is local (inside
    a function); imports under ``if TYPE_CHECKING:`` are for type checkers only and left out."""
    files = {(f"{f.parent.name}.{f.stem}" if f.stem != "__init__" else f.parent.name): f
             for package in ("ram", "envs") for f in (ROOT / package).glob("*.py")}
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        top = {id(n) for n in tree.body}
        found = []
        for node in ast.walk(tree):
            if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                       [node.module, *(f"{node.module}.{a.name}" for a in node.names)] if node.module else [])
            found += [(t, id(node) not in top) for t in targets if t in files and t != name]
        graph[name] = found
    return graph


def test_envs_imports_nothing_from_ram():
    assert not [(m, t) for m, ts in imports().items() if m.startswith("envs") for t, _ in ts if t.startswith("ram")]


def test_no_module_imports_itself_back_local_imports_included():
    graph = {m: {t for t, _ in ts} for m, ts in imports().items()}
    done, path = set(), []

    def visit(m):
        assert m not in path, f"import cycle: {' -> '.join(path[path.index(m):] + [m])}"
        if m in done:
            return
        path.append(m)
        for t in sorted(graph[m]):
            visit(t)
        path.pop()
        done.add(m)

    for m in graph:
        visit(m)
    assert len(graph) > 30  # the walk saw the packages


def test_local_imports_of_the_project_load_only_heavy_optional_packages():
    local = {t for ts in imports().values() for t, is_local in ts if is_local}
    assert local <= HEAVY, local - HEAVY
