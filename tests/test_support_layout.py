"""No module under tests/ imports from a conftest or from a test module.

Conftest files hold fixtures and test modules hold tests; what they share lives in plain
modules (``tests/support/``, or a suite's helpers such as ``tests/projection/helpers.py``).
Importing a conftest by name loads it a second time under another module name (its globals
duplicated), and importing a test module pulls its tests into the importer's namespace.
Imports inside functions count too: they run just the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_banned(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def _module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` reads from (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def banned_imports(root: Path) -> list[tuple[str, int, str]]:
    """Every import of a conftest or test module by a module under ``root`` (a package named
    ``root.name``): (file relative to root, line, module imported)."""
    paths = sorted(root.rglob("*.py"))
    modules = {_module_name(root, path) for path in paths}
    found: list[tuple[str, int, str]] = []
    for path in paths:
        module = _module_name(root, path)
        where = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [(where, node.lineno, a.name) for a in node.names if _is_banned(a.name)]
            elif isinstance(node, ast.ImportFrom):
                base = _base(node, module, path.name == "__init__.py")
                if _is_banned(base):
                    found.append((where, node.lineno, base))
                    continue
                for alias in node.names:  # from package import test_module
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules and _is_banned(submodule):
                        found.append((where, node.lineno, submodule))
    return sorted(found)


def test_no_module_under_tests_imports_a_conftest_or_a_test_module() -> None:
    found = banned_imports(TESTS)
    assert not found, "imports of conftest or test modules:\n" + "\n".join(
        f"  tests/{where}:{line}: {module}" for where, line, module in found
    )


def test_the_checker_reports_each_kind_of_banned_import(tmp_path: Path) -> None:
    root = tmp_path / "checked"  # a package of its own: not this repository's tests
    suite = root / "suite"
    suite.mkdir(parents=True)
    for path in (root / "__init__.py", suite / "__init__.py"):
        path.write_text("")
    (root / "conftest.py").write_text("LIMIT = 3\n")
    (suite / "conftest.py").write_text("from checked.conftest import LIMIT\n")
    (suite / "helpers.py").write_text("def helper() -> int:\n    return 1\n")
    (suite / "test_one.py").write_text(
        "from checked.suite.helpers import helper\n"
        "import checked.suite.test_two\n"
        "from . import test_two\n"
        "from .conftest import LIMIT\n"
        "\n"
        "def test_it() -> None:\n"
        "    from checked.suite import conftest\n"
        "    from checked.suite.test_two import test_that\n"
    )
    (suite / "test_two.py").write_text("def test_that() -> None:\n    pass\n")

    assert banned_imports(root) == [
        ("suite/conftest.py", 1, "checked.conftest"),
        ("suite/test_one.py", 2, "checked.suite.test_two"),
        ("suite/test_one.py", 3, "checked.suite.test_two"),
        ("suite/test_one.py", 4, "checked.suite.conftest"),
        ("suite/test_one.py", 7, "checked.suite.conftest"),
        ("suite/test_one.py", 8, "checked.suite.test_two"),
    ]
