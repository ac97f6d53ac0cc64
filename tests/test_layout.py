"""The layout's rules, checked on the source: no import cycle, dependencies point one way
(models ← dialogs ← bot), and modules stay small enough to hold in one's head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "dialogs", "models")
MAX_LINES = 300  # a module past this wants splitting by purpose, or says in its docstring why not
LONG_REASON = "over 300 lines because"


def product_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def runtime_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The product modules `path` imports, at module level or inside functions (a deferred
    import is still a dependency); imports under `if TYPE_CHECKING:` are for annotations only."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    resolved = set()
    for name in found:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            resolved.add(name)
    return resolved


def all_imports(path: Path) -> set[str]:
    """Every module named in an import anywhere in the file (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_product_modules() -> None:
    modules = product_modules()
    graph = {
        name: {m for m in runtime_imports(path, modules) if m != name}
        for name, path in modules.items()
    }
    # A package imports its own __init__ first: an edge to a parent package is no cycle.
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    assert find_cycle(graph) is None


def subpackage(module: str) -> str:
    """The node of the subpackage graph a module belongs to: `bot.http.auth` and `bot.http` ->
    `bot.http`; a module at a package's top (`bot.app`, `dialogs.chat_dialog`) is its own."""
    return ".".join(module.split(".")[:2])


def test_no_two_subpackages_import_each_other() -> None:
    modules = product_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name in PACKAGES:
            continue  # a package's __init__: it names its modules, it is no subpackage
        source = subpackage(name)
        graph.setdefault(source, set())
        for imported in runtime_imports(path, modules):
            if imported not in PACKAGES and subpackage(imported) != source:
                graph[source].add(subpackage(imported))
    for targets in list(graph.values()):
        for target in targets:
            graph.setdefault(target, set())
    assert find_cycle(graph) is None


# Bot Framework's wire formats (activities, entities, cards) are the channel layer's: dialogs
# get the TurnContext, state and the dialog classes, and hand bot/channels a channel-neutral reply.
WIRE_FORMATS = ("botbuilder.schema", "botframework", "aiohttp")


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("models", ("bot", "dialogs", "botbuilder", "botframework")),
        ("dialogs", ("bot", *WIRE_FORMATS)),
    ],
)
def test_dependencies_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        f"{name} imports {imported}"
        for name, path in product_modules().items()
        if name == package or name.startswith(package + ".")
        for imported in all_imports(path)
        if any(imported == f or imported.startswith(f + ".") for f in forbidden)
    }
    assert not wrong


def test_aiohttp_in_models_only_where_it_serves_http() -> None:
    wrong = {
        name
        for name, path in product_modules().items()
        if name.startswith("models")
        and not name.startswith("models.serving")
        and any(i.split(".")[0] == "aiohttp" for i in all_imports(path))
    }
    assert not wrong


def test_modules_stay_small_or_say_why() -> None:
    too_long = {}
    for name, path in product_modules().items():
        source = path.read_text()
        docstring = ast.get_docstring(ast.parse(source)) or ""
        lines = len(source.splitlines())
        if lines > MAX_LINES and LONG_REASON not in " ".join(docstring.lower().split()):
            too_long[name] = lines
    assert too_long == {}


STORAGE_BACKENDS = ("memory", "sqlite", "postgres", "redis")  # the folders under bot/storage/


def test_storage_backends_do_not_import_each_other() -> None:
    """A backend's folder imports its own modules and what the backends share (bot/storage/*.py),
    never another backend nor the `bot.storage` package (its factory imports every backend); the
    shared modules import no backend."""

    def backend(module: str) -> str | None:
        parts = module.split(".")
        found = parts[:2] == ["bot", "storage"] and len(parts) > 2 and parts[2] in STORAGE_BACKENDS
        return parts[2] if found else None

    wrong = {
        f"{name} imports {imported}"
        for name, path in product_modules().items()
        if name.startswith("bot.storage.")
        for imported in all_imports(path)
        if backend(imported) not in (None, backend(name))
        or (backend(name) is not None and imported == "bot.storage")
    }
    assert not wrong
