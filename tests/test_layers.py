"""Layers: the domain never imports aiogram; imports point only down, and never in a cycle."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "gamification"
TELEGRAM_SIDE = {"telegram", "web", "ops", "setup.py"}
TELEGRAM_FILES: set[str] = set()


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_modules_do_not_import_aiogram() -> None:
    checked = 0
    for path in PLUGIN.rglob("*.py"):
        relative = path.relative_to(PLUGIN)
        if relative.parts[0] in TELEGRAM_SIDE or relative.as_posix() in TELEGRAM_FILES:
            continue
        checked += 1
        offenders = {m for m in imported_modules(path) if m.split(".")[0] == "aiogram"}
        assert not offenders, f"{relative} imports {offenders}"
        assert not any(
            m.startswith("plugins.gamification.telegram") for m in imported_modules(path)
        )
    assert checked >= 10


def test_every_module_says_what_it_is_for() -> None:
    for path in [*PLUGIN.rglob("*.py"), *(PLUGIN.parents[1] / "bot").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{path} has no module docstring"


# -- import directions over the whole tree ---------------------------------------------------

ROOT = PLUGIN.parents[1]
OUR_PACKAGES = ("bot", "plugins", "benchmarks")


@dataclass(frozen=True)
class Rule:
    """Modules under `importer` must not import modules under `imported`, except `allowed`.

    Prefixes are dotted module names and match whole name parts ("bot" is not "bots").
    """

    importer: str
    imported: str
    why: str
    allowed: frozenset[str] = frozenset()


GAMIFICATION = "plugins.gamification"
# The plugin's layers, lowest first, and what each may import of the plugin besides itself.
# ops and setup.py wire everything together; nothing else imports telegram/ or ops/.
LAYERS: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "storage": frozenset({"domain"}),
    "engine": frozenset({"storage", "domain"}),
    "services": frozenset({"engine", "storage", "domain"}),
    "cards": frozenset({"domain"}),
    "bus": frozenset({"services", "engine", "storage", "domain"}),
    "telegram": frozenset({"bus", "cards", "services", "engine", "storage", "domain"}),
    "web": frozenset({"services", "engine", "storage", "domain"}),
    "ops": frozenset(
        {"setup", "telegram", "web", "bus", "cards", "services", "engine", "storage", "domain"}
    ),
    "setup": frozenset(
        {"ops", "telegram", "web", "bus", "cards", "services", "engine", "storage", "domain"}
    ),
}
LAYER_WHY = {
    "domain": "the domain is pure rules: it imports nothing of ours outside domain/",
    "storage": "storage sits on the domain only",
    "engine": "the engine talks to storage and the domain only",
    "services": "services sit on the engine, storage and the domain",
    "cards": "rank cards are drawing only: they know the domain's config, nothing else",
    "bus": "the bus sits on services and below, and never knows Telegram",
    "telegram": "Telegram handlers sit on the bus, services and below",
    "web": "the chat pages sit on the services and below, beside the Telegram handlers",
    "ops": "operator tools may wire anything",
    "setup": "setup.py is the plugin's wiring",
}


def layer_rules() -> tuple[Rule, ...]:
    return tuple(
        Rule(f"{GAMIFICATION}.{layer}", f"{GAMIFICATION}.{other}", LAYER_WHY[layer])
        for layer, below in LAYERS.items()
        for other in LAYERS
        if other != layer and other not in below
    )


RULES = (
    Rule("plugins", "bot", "a plugin works in any aiogram bot, not only in this host"),
    Rule(
        "bot",
        "plugins",
        "the host knows its plugins only in its composition root",
        allowed=frozenset({"bot.registry"}),
    ),
    Rule("bot", "benchmarks", "the benchmark is not installed"),
    Rule("plugins", "benchmarks", "the benchmark is not installed"),
    *layer_rules(),
)
# Cycles that exist today and are being taken apart; a cycle not listed here fails.
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


def our_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for top in OUR_PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports anywhere: top level, in a function, or
    under TYPE_CHECKING. `from package import module` is an edge to that module."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.append(full if full in modules else node.module)
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_imports_point_only_in_the_allowed_directions() -> None:
    modules = our_modules()
    graph = import_graph(modules)
    assert "bot.registry" in graph
    assert "plugins.gamification.setup" in graph
    broken = [
        f"{importer} imports {imported}: {rule.why}"
        for importer, targets in sorted(graph.items())
        for imported in sorted(targets)
        for rule in RULES
        if under(importer, rule.importer)
        and under(imported, rule.imported)
        and importer not in rule.allowed
    ]
    assert not broken, "\n".join(broken)


def test_there_is_no_import_cycle_among_our_modules() -> None:
    found = cycles(import_graph(our_modules()))
    new = [sorted(c) for c in found if c not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"


def test_the_rules_catch_an_upward_import_and_a_cycle() -> None:
    graph = {
        "plugins.x.a": {"bot.app", "plugins.x.b"},
        "plugins.x.b": {"plugins.x.c"},
        "plugins.x.c": {"plugins.x.a"},
        "bot.app": {"plugins.x.a"},
        "bot.registry": {"plugins.x.a"},
        "bots.other": {"plugins.x.a"},
    }
    upward = [
        (importer, imported)
        for importer, targets in graph.items()
        for imported in targets
        for rule in RULES
        if under(importer, rule.importer)
        and under(imported, rule.imported)
        and importer not in rule.allowed
    ]
    assert sorted(upward) == [("bot.app", "plugins.x.a"), ("plugins.x.a", "bot.app")]
    assert cycles(graph) == [frozenset({"plugins.x.a", "plugins.x.b", "plugins.x.c", "bot.app"})]


def test_the_layer_rows_catch_an_upward_import_inside_the_plugin() -> None:
    p = GAMIFICATION
    graph = {
        f"{p}.services.scoring": {f"{p}.bus.inbound", f"{p}.engine"},
        f"{p}.domain.rules": {f"{p}.storage.protocol", f"{p}.domain.models"},
        f"{p}.bus.relay": {f"{p}.telegram.announcer", f"{p}.services.scoring"},
        f"{p}.telegram.admin": {f"{p}.bus.events", f"{p}.ops.metrics"},
        f"{p}.ops.metrics": {f"{p}.telegram.runtime"},
        f"{p}.setup": {f"{p}.ops.metrics", f"{p}.telegram"},
    }
    upward = sorted(
        (importer, imported)
        for importer, targets in graph.items()
        for imported in targets
        if any(
            under(importer, rule.importer)
            and under(imported, rule.imported)
            and importer not in rule.allowed
            for rule in RULES
        )
    )
    assert upward == [
        (f"{p}.bus.relay", f"{p}.telegram.announcer"),
        (f"{p}.domain.rules", f"{p}.storage.protocol"),
        (f"{p}.services.scoring", f"{p}.bus.inbound"),
        (f"{p}.telegram.admin", f"{p}.ops.metrics"),
    ]
