"""The package's shape holds: imports run one way between its folders, no two modules import each other, the
report never needs torch, and no module grows past a size a reader can hold."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO

PACKAGE = REPO / "ar_experiments"
# What each folder may import of the package (besides itself). The commands at the top (train, predict,
# explore, summary, check_data) and bench/ may import any folder; nothing imports them.
MAY_IMPORT = {
    "safety": set(),
    "record": set(),
    "data": set(),
    "models": {"safety"},
    "sweeps": {"safety"},
    "evaluation": {"data", "safety"},
    "config": {"data", "models", "sweeps", "safety"},
    "training": {"config", "data", "models", "evaluation", "sweeps", "safety", "record"},
    "report": {"safety", "sweeps", "record"},  # sweeps: the names of the progress files it reads
}
COMMANDS = {"train", "predict", "explore", "summary", "check_data", "bench"}
MAX_LINES = 300


def module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path) -> set[str]:
    """Every module of the package this file imports, at the top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.update(f"{module}.{alias.name}" for alias in node.names)
            found.add(module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module.startswith("ar_experiments.")}


def package_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def folder(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_folders_import_only_what_their_rule_allows():
    broken = []
    for module, imported in package_graph().items():
        own = folder(module)
        if own in MAY_IMPORT:
            for target in imported:
                other = folder(target)
                if other and other != own and other not in MAY_IMPORT[own]:
                    broken.append(f"{module} imports {target}")
        for target in imported:
            if folder(target) in COMMANDS and folder(module) != folder(target):
                broken.append(f"{module} imports the command {target}")
    assert not broken, "imports against the layout (tests/test_layout.py MAY_IMPORT):\n" + "\n".join(sorted(broken))
    assert set(MAY_IMPORT) | COMMANDS >= {
        path.name for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").exists()
    }, "a new folder needs its rule in MAY_IMPORT"


def test_no_import_cycles():
    graph = package_graph()
    graph.pop("ar_experiments", None)  # the package's __init__ registers resolvers: every module "imports" it
    cycles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "modules that import each other:\n" + "\n".join(cycles)


def test_the_report_imports_no_torch():
    code = "import sys, ar_experiments.report.cli, ar_experiments.report.build; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_every_folder_says_what_it_is_for_and_no_module_is_too_long():
    for init in PACKAGE.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(REPO)} needs its docstring"
    long = [
        f"{path.relative_to(REPO)}: {n} lines"
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)
