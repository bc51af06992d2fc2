"""The package's boundaries, read from its source (issue 14): the state owns every SQL
statement of the harvest, and no import cycle exists, counting imports inside functions."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TypeGuard

import inat_async
from inat_async.model import PhotoStatus
from inat_async.store.state import State

PACKAGE = Path(inat_async.__file__).parent
# SQL statements as they start; identifiers alone (column names) are not statements.
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|PRAGMA)\b"
)
# The harvest's database is the store's; the budget ledger (one SQLite file per user, shared by
# every harvest) is net/budget.py's own; the simulator is not the harvester.
SQL_OWNERS = ("store/", "net/budget.py", "simulator/")


def _modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        yield relative, path, ast.parse(path.read_text(encoding="utf-8"))


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string constant, f-strings' literal parts included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_no_sql_outside_the_store() -> None:
    found = [
        f"{relative}:{line}: {text.strip()[:60]}"
        for relative, _, tree in _modules()
        if not relative.startswith(SQL_OWNERS)
        for line, text in _strings(tree)
        if SQL.search(text)
    ]
    assert found == []


def test_the_state_takes_no_sql() -> None:
    """Exports read typed rows through State's methods, never a query of their own."""
    assert not hasattr(State, "query_chunks")
    connects = [
        relative
        for relative, _, tree in _modules()
        if not relative.startswith(SQL_OWNERS)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "connect"
    ]
    assert connects == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, tree: ast.Module, modules: set[str]) -> set[str]:
    """The package's modules this one imports, anywhere in it (functions included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in found if module in modules and module != name}


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[str] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "visiting"
        for target in sorted(graph[name]):
            if state.get(target) == "visiting":
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_module_imports_the_package_init() -> None:
    importers = [name for name, targets in _graph().items() if "inat_async" in targets]
    assert importers == []


def _graph() -> dict[str, set[str]]:
    parsed = {_module_name(path): (path, tree) for _, path, tree in _modules()}
    return {name: _imports(path, tree, set(parsed)) for name, (path, tree) in parsed.items()}


def test_only_the_network_layer_touches_the_session_and_politeness() -> None:
    """Http owns politeness for API and photo requests alike: the downloader and the dry
    run ask it for a photo request (Http.photo), never for its session or its gate."""
    reaching = [
        f"{relative}:{node.lineno}: .{node.attr}"
        for relative, _, tree in _modules()
        if not relative.startswith(("net/", "simulator/"))
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("session", "politeness")
    ]
    assert reaching == []


STATUS_WORDS = {status.value for status in PhotoStatus}


def _status_literals(tree: ast.AST) -> Iterator[int]:
    """Lines where a photo status is written as a bare string: compared, looked up, passed
    or stored (a display word such as eta="done" is none of these)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            candidates = [node.left, *node.comparators]
        elif isinstance(node, ast.Subscript):
            candidates = [node.slice]
        elif isinstance(node, ast.Call):
            candidates = [*node.args, *(k.value for k in node.keywords if k.arg == "status")]
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            candidates = list(node.elts)
        else:
            continue
        for value in candidates:
            if isinstance(value, ast.Constant) and value.value in STATUS_WORDS:
                yield value.lineno


def test_photo_statuses_are_the_enum_everywhere() -> None:
    bare = [
        f"{relative}:{line}"
        for relative, _, tree in _modules()
        if relative != "model.py" and not relative.startswith("simulator/")
        for line in _status_literals(tree)
    ]
    assert bare == []


def test_progress_is_changed_through_its_own_methods() -> None:
    """No module sets a Progress counter from outside (an attribute of something named
    progress assigned, or setattr on it)."""
    found = []
    for relative, _, tree in _modules():
        if relative == "pipeline/progress.py":
            continue
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AugAssign)
                else []
            )
            for target in targets:
                if isinstance(target, ast.Attribute) and _names_progress(target.value):
                    found.append(f"{relative}:{node.lineno}")
            if _is_setattr(node) and _names_progress(node.args[0]):
                found.append(f"{relative}:{node.lineno}")
    assert found == []


def _names_progress(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "progress") or (
        isinstance(node, ast.Attribute) and node.attr == "progress"
    )


def _is_setattr(node: ast.AST) -> TypeGuard[ast.Call]:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "setattr"
        and bool(node.args)
    )


def test_tests_import_no_conftest() -> None:
    """Fixtures come from conftest.py by name; helpers are imported from helpers.py."""
    tests = Path(__file__).parent
    importing = [
        path.name
        for path in sorted(tests.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom | ast.Import)
        and any(
            "conftest" in name
            for name in [getattr(node, "module", None) or "", *(a.name for a in node.names)]
        )
    ]
    assert importing == []
