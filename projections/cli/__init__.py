"""The commands of the projection layer: ``project``, ``rebuild``, ``digest``, ``verify``,
``diff``, ``status``, ``snapshot``, ``compact``, ``lease``, ``backfill``, ``compare`` and
``query``.

They build on the kit in ``receipt_events.cli`` (options, output, exit statuses) and import
the projection, and so chromadb, only inside their bodies, when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer

from projections.cli.backfill_command import backfill_command
from projections.cli.compaction_commands import compact_command
from projections.cli.compare_command import compare_command
from projections.cli.lease_commands import lease_app
from projections.cli.options import OLD_SPELLINGS
from projections.cli.projection_commands import (
    diff_command,
    digest_command,
    project_command,
    rebuild_command,
    verify_command,
)
from projections.cli.query_command import query_command
from projections.cli.snapshot_commands import snapshot_app
from projections.cli.status_command import status_command
from receipt_events.cli.aliases import with_aliases

CommandFunction = TypeVar("CommandFunction", bound=Callable[..., Any])


def register(app: typer.Typer) -> None:
    """Add the projection layer's commands to ``app``."""

    def command(name: str) -> Callable[[CommandFunction], CommandFunction]:
        return app.command(name, cls=with_aliases(OLD_SPELLINGS.get(name, {})))

    command("status")(status_command)
    command("project")(project_command)
    command("rebuild")(rebuild_command)
    command("digest")(digest_command)
    command("verify")(verify_command)
    command("diff")(diff_command)
    command("backfill")(backfill_command)
    command("compare")(compare_command)
    command("query")(query_command)
    app.add_typer(snapshot_app, name="snapshot")
    command("compact")(compact_command)
    app.add_typer(lease_app, name="lease")
