"""receipt_events must never import chromadb: the stream Lambda imports it, and stays light.

A fresh interpreter installs an import hook that records (and blocks) every attempt to import
``chromadb`` or ``chromadb.*``, then imports every module of the package, found by walking it,
so a module added later is checked too. A second test runs the same checker on a throwaway
package that does import chromadb, to show that the checker can see it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "receipt_events"
BLOCKED = "chromadb"

CHECKER = r"""
import importlib
import importlib.abc
import json
import pkgutil
import sys

config = json.loads(sys.argv[1])
sys.path[:0] = config["paths"]
blocked = config["blocked"]
attempts = {}  # module being imported -> blocked names it tried to import
importing = "<startup>"


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == blocked or name.startswith(blocked + "."):
            attempts.setdefault(importing, []).append(name)
            raise ModuleNotFoundError(f"import of {name!r} blocked by the test", name=name)
        return None


sys.meta_path.insert(0, Blocker())
imported, errors = [], {}


def import_one(name):
    global importing
    importing = name
    try:
        importlib.import_module(name)
    except BaseException as error:  # SystemExit too: a module must not run anything on import
        errors[name] = f"{type(error).__name__}: {error}"
    else:
        imported.append(name)


for package_name in config["packages"]:
    import_one(package_name)
    package = sys.modules.get(package_name)
    if package is None:
        continue
    walk = pkgutil.walk_packages(
        package.__path__, package_name + ".", onerror=lambda name: None  # recorded below
    )
    for module in walk:  # import each module before the walk looks inside it
        if module.name.rpartition(".")[2] == "__main__":
            continue  # an entry point: importing it would run the program
        import_one(module.name)

print(json.dumps({
    "attempts": attempts,
    "imported": imported,
    "errors": errors,
    "loaded": sorted(m for m in sys.modules if m == blocked or m.startswith(blocked + ".")),
}))
"""


def check_imports(packages: list[str], paths: list[Path]) -> dict[str, Any]:
    """Import every module of ``packages`` in a fresh interpreter; report chromadb imports."""
    config = {"paths": [str(p) for p in paths], "packages": packages, "blocked": BLOCKED}
    completed = subprocess.run(
        [sys.executable, "-c", CHECKER, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


def modules_on_disk(root: Path, package: str) -> set[str]:
    """Every module of a package, from its files (what the walk must have found)."""
    names = set()
    for path in (root / package).rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def test_receipt_events_never_imports_chromadb() -> None:
    report = check_imports([PACKAGE], [ROOT])

    assert report["attempts"] == {}, f"modules that import {BLOCKED}: {report['attempts']}"
    assert report["loaded"] == []
    assert report["errors"] == {}, "modules that failed to import (so were not checked)"
    # every module was imported, the PostgreSQL backend included
    assert set(report["imported"]) == modules_on_disk(ROOT, PACKAGE)
    assert len(report["imported"]) == len(set(report["imported"]))
    assert {"receipt_events.store.postgres", "receipt_events.ingest"} <= set(report["imported"])


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_reports_a_module_that_imports_chromadb(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        {
            "throwaway/__init__.py": "",
            "throwaway/light.py": "import json\n",
            "throwaway/heavy.py": "import chromadb\n",
            "throwaway/guarded.py": """\
                try:
                    import chromadb.config
                except ImportError:  # "optional" is still an import
                    chromadb = None
                """,
            "throwaway/sub/__init__.py": "",
            "throwaway/sub/indirect.py": "from throwaway import heavy\n",
        },
    )

    report = check_imports(["throwaway"], [tmp_path])

    assert report["attempts"] == {
        "throwaway.guarded": ["chromadb"],
        "throwaway.heavy": ["chromadb"],
        "throwaway.sub.indirect": ["chromadb"],
    }
    assert report["loaded"] == []
    assert set(report["errors"]) == {"throwaway.heavy", "throwaway.sub.indirect"}
    assert "blocked by the test" in report["errors"]["throwaway.heavy"]
    assert set(report["imported"]) == {
        "throwaway",
        "throwaway.light",
        "throwaway.guarded",
        "throwaway.sub",
    }
    assert set(report["imported"]) | set(report["errors"]) == modules_on_disk(tmp_path, "throwaway")
