"""Dependencies point one way: lambdas → projections → receipt_chroma → receipt_events, the
command line above them all, the generators beside it, and no import cycles.

Every module is parsed, not imported, so an import inside a function, a ``try`` or an
``if TYPE_CHECKING:`` block counts like one at the top. Each module belongs to the layer of
its longest package prefix (:data:`LAYERS`); an import of a project module outside the
layers its own layer may use (:data:`MAY_IMPORT`) is a violation, and so is a third-party
package a layer must never load (:data:`NEVER`). Cycles are looked for among the imports
that run (``TYPE_CHECKING`` blocks are for the type checker only). The last tests build
throwaway trees with each kind of bad import and show that the checker reports them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]

# layer → the package prefix its modules live under (a module takes its longest prefix)
LAYERS = {
    "receipt_events": "receipt_events",
    "receipt_chroma": "receipt_chroma",
    "projections": "projections",
    "lambdas": "lambdas",
    "synthetic": "synthetic",
    "log commands": "receipt_events.cli",
    "projection commands": "projections.cli",
    "app": "receipt_cli",
}
LIBRARIES = ("receipt_events", "receipt_chroma", "projections")
RUNTIME = (*LIBRARIES, "lambdas")
COMMANDS = ("log commands", "projection commands", "app")
MAY_IMPORT: dict[str, set[str]] = {
    "receipt_events": {"receipt_events"},
    "receipt_chroma": {"receipt_events", "receipt_chroma"},
    "projections": {"receipt_events", "receipt_chroma", "projections"},
    "lambdas": {*RUNTIME},
    # tools: the synthetic history and the delta writer; never imported by the runtime
    "synthetic": {"receipt_events", "receipt_chroma", "synthetic"},
    "log commands": {"receipt_events", "log commands"},
    "projection commands": {*LIBRARIES, "log commands", "projection commands"},
    "app": {*LIBRARIES, *COMMANDS, "synthetic"},
}
# third-party packages a layer must never load: the stream Lambda imports receipt_events
NEVER = {"receipt_events": {"chromadb", "numpy"}, "log commands": {"chromadb", "numpy"}}


class Import(msgspec.Struct, frozen=True):
    source: str  # the importing module
    target: str  # the imported module (a project module) or top-level package (third party)
    line: int
    type_checking: bool  # inside ``if TYPE_CHECKING:``


class Report(msgspec.Struct):
    upward: list[str]  # "source:line imports target (layer a → layer b)"
    forbidden: list[str]  # "source:line imports chromadb (never in layer a)"
    cycles: list[list[str]]  # each a sorted strongly connected set of modules


def project_modules(root: Path) -> dict[str, Path]:
    """Every module of the layered packages under ``root``, by dotted name."""
    modules: dict[str, Path] = {}
    for package in {prefix.split(".")[0] for prefix in LAYERS.values()}:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def layer_of(module: str) -> str | None:
    """The layer whose package prefix is the longest that contains ``module``."""
    matches = [
        (len(prefix), layer)
        for layer, prefix in LAYERS.items()
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_checking: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under ``node``, with whether it sits in an ``if TYPE_CHECKING:`` body."""
    for child in ast.iter_child_nodes(node):
        inside = type_checking
        if isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
            inside = True
        yield child, inside
        yield from _walk(child, inside)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def resolve(name: str) -> str:
        """The longest prefix of ``name`` that is a project module, else its top package."""
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in modules:
                return candidate
        return parts[0]

    for node, type_checking in _walk(tree):
        if isinstance(node, ast.Import):
            targets = [resolve(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a.b import c``: the module a.b.c if there is one, else a.b
            targets = [resolve(f"{base}.{alias.name}") for alias in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            found.append(Import(module, target, node.lineno, type_checking))
    return found


def check(root: Path) -> Report:
    modules = project_modules(root)
    report = Report([], [], [])
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in modules.items():
        source_layer = layer_of(module)
        assert source_layer is not None, module
        for imp in imports_of(module, path, modules):
            where = f"{module}:{imp.line}"
            if imp.target in modules:
                target_layer = layer_of(imp.target)
                assert target_layer is not None
                if target_layer not in MAY_IMPORT[source_layer]:
                    report.upward.append(
                        f"{where} imports {imp.target} ({source_layer} → {target_layer})"
                    )
                if not imp.type_checking and imp.target != module:
                    graph[module].add(imp.target)
            elif imp.target in NEVER.get(source_layer, set()):
                report.forbidden.append(f"{where} imports {imp.target} (never in {source_layer})")
    report.upward.sort()
    report.forbidden.sort()
    report.cycles = strongly_connected(graph)
    return report


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected sets of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(start: str) -> None:
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
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


# -- the project --------------------------------------------------------------------------


def test_every_module_has_a_layer_and_every_layer_has_modules() -> None:
    modules = project_modules(ROOT)
    assert all(layer_of(module) for module in modules)
    assert {layer_of(module) for module in modules} == set(LAYERS)


def test_no_import_points_up_a_layer() -> None:
    assert check(ROOT).upward == []


def test_the_log_library_and_its_commands_never_import_chromadb() -> None:
    assert check(ROOT).forbidden == []


def test_there_are_no_import_cycles() -> None:
    assert check(ROOT).cycles == []


def test_starting_the_command_line_loads_no_chroma_numpy_or_boto3() -> None:
    """The app imports every layer's commands; the heavy libraries load only when a command
    that needs them runs, so ``ingest``, ``log`` and ``status`` start light."""
    script = (
        "import json, sys\n"
        "from receipt_cli.app import app\n"
        "from typer.main import get_command\n"
        "get_command(app)\n"
        "heavy = ('chromadb', 'numpy', 'boto3', 'botocore', 'onnxruntime')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# -- the checker sees what it must ----------------------------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name in {prefix.split(".")[0] for prefix in LAYERS.values()}:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "__init__.py").touch()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "receipt_events/events.py": "import json\nimport msgspec\n",
            "receipt_chroma/client.py": "import chromadb\nfrom receipt_events import events\n",
            "projections/runner.py": "from receipt_chroma.client import x\n",
            "lambdas/projector.py": "from projections import runner\n",
            "receipt_events/cli/__init__.py": "from . import log_commands\n",
            "receipt_events/cli/log_commands.py": "from ..events import Event\n",
            "projections/cli/__init__.py": "from receipt_events.cli import log_commands\n",
            "receipt_cli/app.py": "from projections import cli\nfrom synthetic import deltas\n",
            "synthetic/deltas.py": "from receipt_chroma import client\n",
        },
    )
    assert check(tmp_path) == Report([], [], [])


def test_the_checker_reports_each_kind_of_bad_import(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            # upward, hidden inside a function: still counts
            "receipt_events/ingest.py": """\
                def later():
                    from projections.runner import catch_up
                """,
            "projections/runner.py": "",
            # a library importing the command line
            "receipt_chroma/deltas.py": "from receipt_events.cli.options import StoreOption\n",
            "receipt_events/cli/__init__.py": "",
            "receipt_events/cli/options.py": "",
            # the runtime importing a generator
            "lambdas/handler.py": "import synthetic.history as history\n",
            "synthetic/history.py": "",
            # the log's commands importing the projection's commands (a lower CLI layer up)
            "receipt_events/cli/log_commands.py": "import projections.cli.status\n",
            "projections/cli/__init__.py": "",
            "projections/cli/status.py": "",
            # chromadb in the log library, in a TYPE_CHECKING block: still never
            "receipt_events/events.py": """\
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    import chromadb.api
                """,
            # a cycle of three, and a type-only back reference that is no cycle
            "receipt_chroma/a.py": "from receipt_chroma import b\n",
            "receipt_chroma/b.py": "def f():\n    import receipt_chroma.c\n",
            "receipt_chroma/c.py": "from receipt_chroma.a import thing\n",
            "receipt_chroma/d.py": "from receipt_chroma import e\n",
            "receipt_chroma/e.py": """\
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from receipt_chroma.d import D
                """,
        },
    )
    report = check(tmp_path)
    assert report.upward == [
        "lambdas.handler:1 imports synthetic.history (lambdas → synthetic)",
        "receipt_chroma.deltas:1 imports receipt_events.cli.options "
        "(receipt_chroma → log commands)",
        "receipt_events.cli.log_commands:1 imports projections.cli.status "
        "(log commands → projection commands)",
        "receipt_events.ingest:2 imports projections.runner (receipt_events → projections)",
    ]
    assert report.forbidden == [
        "receipt_events.events:3 imports chromadb (never in receipt_events)"
    ]
    assert report.cycles == [["receipt_chroma.a", "receipt_chroma.b", "receipt_chroma.c"]]
