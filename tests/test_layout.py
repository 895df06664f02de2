"""The layout holds: each package imports only the rooms below it, no import cycle.

Read from the sources (every import, at the top of a module or inside a function), so
a lazy import cannot hide a cycle or a framework in ``operators/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("operators", "state", "flows", "server", "cxstream")
# what operators/ may not use: the framework, the store, the network, the disk, the clock
FORBIDDEN_IMPORTS = ("bytewax", "redis", "websockets", "importlib.resources", "socket")
FORBIDDEN_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "getenv"}
CLOCKS = {("time", "time"), ("time", "monotonic"), ("time", "perf_counter"), ("datetime", "now")}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(ast.parse(path.read_text())) if m in modules and m != name}
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, if any (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    assert _cycle(_graph()) == []


def test_operators_import_only_operators_and_no_framework() -> None:
    for name, path in _modules().items():
        if not name.startswith("operators"):
            continue
        for imported in _imports(ast.parse(path.read_text())):
            top = imported.split(".")[0]
            assert top not in PACKAGES or top == "operators", f"{name} imports {imported}"
            assert not imported.startswith(FORBIDDEN_IMPORTS), f"{name} imports {imported}"


def test_operators_read_no_file_environment_or_clock() -> None:
    for name, path in _modules().items():
        if not name.startswith("operators"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            assert called not in FORBIDDEN_CALLS, f"{name}:{node.lineno} calls {called}"
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                pair = (func.value.id, func.attr)
                assert pair not in CLOCKS, f"{name}:{node.lineno} reads the clock"
            assert not (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Attribute)
                and func.value.attr == "environ"
            ), f"{name}:{node.lineno} reads the environment"


def test_state_and_server_do_not_import_the_command_line_or_the_flow() -> None:
    graph = _graph()
    for name, imported in graph.items():
        if name.startswith(("operators", "state", "server")):
            bad = {
                m
                for m in imported
                if m.startswith(("cxstream.cli", "cxstream.commands", "cxstream.demo", "flows"))
            }
            assert not bad, f"{name} imports {sorted(bad)}"


# Redis commands that write: only state/ sends them (its builders, state/commands.py)
REDIS_WRITES = {
    "xadd", "xtrim", "xdel", "hset", "hsetnx", "hincrby", "hdel", "delete", "unlink",
    "expire", "pexpire", "sadd", "srem", "rename", "setex", "setnx", "mset", "incr",
}  # fmt: skip


def test_redis_is_written_only_from_state() -> None:
    for name, path in _modules().items():
        if not name.startswith(("flows", "server", "cxstream")):  # operators: no redis at all
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                called = node.func.attr
                assert called not in REDIS_WRITES, f"{name}:{node.lineno} calls {called}"
                if called == "execute_command" and node.args:
                    first = node.args[0]
                    assert not isinstance(first, ast.Constant), (
                        f"{name}:{node.lineno} writes a command of its own: build it in state/"
                    )
