"""The house's rules (docs/architecture.md), read from the source with ``ast``: every import (at the top of
a module or inside a function) goes down the rooms, never up; no two modules import each other, however
far round; no room is over about 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "photoguard"

# Lowest first: a module may import from its own room and the rooms before it, never from a later one
# (the command line starts the web app with `photoguard serve`; the web app never runs a command).
ROOMS = ["photos", "engine", "rules", "store", "flow", "evaluate", "web", "cli"]
MAX_LINES = 520


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _floor(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in ROOMS:
        return None
    return ROOMS.index(parts[1])


def _imports(path: Path, known: set[str]) -> set[str]:
    """The photoguard modules ``path`` imports anywhere in it (``from pkg import module`` counts the module)."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            modules = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}
            found |= modules
            if len(modules) < len(node.names):   # names defined in the package itself, not its modules
                found.add(target)
    return {m for m in found if m in known and m != here}


def _graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {_module(p) for p in paths}
    return {_module(p): _imports(p, known) for p in paths}


def test_every_module_lives_in_a_room():
    loose = [m for m in _graph() if _floor(m) is None and m not in ("photoguard", "photoguard.__main__")]
    assert loose == [], f"modules outside the rooms {ROOMS}: {loose}"


def test_imports_never_go_up():
    upward = []
    for module, imports in _graph().items():
        floor = _floor(module)
        if floor is None:
            continue
        for target in imports:
            there = _floor(target)
            if there is not None and there > floor:
                upward.append(f"{module} imports {target}")
    assert upward == [], "\n".join(sorted(upward))


def test_no_import_circle():
    graph = _graph()
    circles = []
    state: dict[str, int] = {}   # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in graph:
                if state.get(nxt) == 1:
                    circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
                elif nxt not in state:
                    visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert circles == [], "\n".join(circles)


def test_no_module_is_over_about_500_lines():
    long = {_module(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, long
