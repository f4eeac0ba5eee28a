"""``lease create-table``: the DynamoDB table that holds the publish leases of S3 stores."""

from __future__ import annotations

from typing import Annotated

import typer

from receipt_chroma.lease import LEASE_TABLE_ENVS
from receipt_events.cli.options import JsonOption
from receipt_events.cli.output import console, emit_json

lease_app = typer.Typer(help="The DynamoDB lease table that guards publishing to S3.")


@lease_app.command("create-table")
def create_table_command(
    lease_table: Annotated[
        str,
        typer.Option("--lease-table", envvar=list(LEASE_TABLE_ENVS), help="The table's name."),
    ],
    json: JsonOption = False,
) -> None:
    """Create the lease table (on-demand billing; nothing happens if it exists) and wait until
    it is active. Never enable TTL on it: a deleted item would restart its fencing token."""
    import boto3

    from receipt_chroma.lease import create_lease_table

    created = create_lease_table(boto3.client("dynamodb"), lease_table)
    if json:
        emit_json({"table": lease_table, "created": created})
    else:
        console.print(
            f"created the lease table {lease_table}"
            if created
            else f"the lease table {lease_table} exists"
        )
