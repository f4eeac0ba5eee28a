"""Build the stream processor's Lambda zip: ``build/stream-processor.zip``.

The zip holds ``lambdas/stream_processor.py`` and the Lambda plumbing it uses, the
``receipt_events`` package without its command line, and the libraries they import (msgspec,
eventsourcing with psycopg), installed as manylinux wheels for Lambda's Python 3.11 on x86_64.
Nothing of chromadb, numpy, ``receipt_chroma``, ``projections``, the command line or the
``synthetic`` generators goes in: this function only appends to the log.

Nor does boto3: the Lambda Python runtime provides boto3, botocore and s3transfer (the
``dynamodb://`` event store, the wake queue and the lease use them), and they would be most of
the zip. ``REQUIREMENTS`` does not pull them in today; in case it ever does (a dependency
of a dependency, or ``boto3`` added here for the DynamoDB store), whatever pip installs of
``RUNTIME_PROVIDED`` is deleted before zipping. psycopg stays: the ``postgresql://`` variant of
the stack deploys this same zip.

    python deploy/build_lambda_zip.py [--out build/stream-processor.zip]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("msgspec>=0.19", "eventsourcing[postgres]==9.5.6", "psycopg[binary]>=3.2")
# Installed in the Lambda runtime: never bundled, even when a requirement pulls them in.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
EXCLUDED_PARTS = {"__pycache__", "cli"}  # the CLI (typer, rich) is not part of the function
LAMBDA_MODULES = (  # the stream processor and the plumbing it imports
    "__init__.py",
    "stream_processor.py",
    "invocation.py",
    "observability.py",
    "wakeup.py",
    "warm_store.py",
)
SOURCES = (
    ("receipt_events", "receipt_events"),
    *((f"lambdas/{name}", f"lambdas/{name}") for name in LAMBDA_MODULES),
)


def drop_runtime_provided(target: Path) -> list[str]:
    """Delete the packages and ``.dist-info`` of ``RUNTIME_PROVIDED`` from a pip ``--target``
    directory; returns the names deleted."""
    dropped: list[str] = []
    for name in RUNTIME_PROVIDED:
        for path in sorted([*target.glob(name), *target.glob(f"{name}-*.dist-info")]):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            dropped.append(path.name)
    return dropped


def build(out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="lambda-zip-") as scratch:
        target = Path(scratch)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                str(target),
                "--platform",
                "manylinux2014_x86_64",
                "--implementation",
                "cp",
                "--python-version",
                "3.11",
                "--only-binary=:all:",
                *REQUIREMENTS,
            ],
            check=True,
        )
        drop_runtime_provided(target)
        for source, destination in SOURCES:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(
                    origin, target / destination, ignore=shutil.ignore_patterns(*EXCLUDED_PARTS)
                )
            else:
                (target / destination).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / destination)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for path in sorted(target.rglob("*")):
                relative = path.relative_to(target)
                if path.is_file() and "__pycache__" not in relative.parts:
                    archive.write(path, relative.as_posix())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "stream-processor.zip")
    out = build(parser.parse_args().out)
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
