"""``store create-table``: the table a ``dynamodb://`` event store lives in."""

from __future__ import annotations

import typer

from receipt_events.cli.errors import fail
from receipt_events.cli.options import JsonOption, StoreOption
from receipt_events.cli.output import console, emit_json
from receipt_events.store import DynamoDBTarget, parse_store_url, resolve_store_url

store_app = typer.Typer(help="The event store itself (the DynamoDB backend's table).")


@store_app.command("create-table")
def create_table_command(store: StoreOption = None, json: JsonOption = False) -> None:
    """Create the DynamoDB table of a dynamodb://TABLE store (on-demand billing; nothing
    happens if it exists) and wait until it is active. Region, endpoint and credentials come
    from the standard AWS variables. SQLite and PostgreSQL stores make their tables on open."""
    from receipt_events.store.dynamodb import dynamodb_client
    from receipt_events.store.dynamodb_table import NotAStoreTable, create_store_table

    url = resolve_store_url(store)
    target = parse_store_url(url)
    if not isinstance(target, DynamoDBTarget):
        fail(
            f"{url} is not a dynamodb:// store: only DynamoDB tables are created by this "
            "command (SQLite and PostgreSQL stores create their tables when opened)"
        )
    try:
        created = create_store_table(dynamodb_client(target), target.table)
    except NotAStoreTable as error:
        fail(str(error))
    if json:
        emit_json({"store": url, "table": target.table, "created": created})
    else:
        console.print(
            f"created the event store table {target.table}"
            if created
            else f"the event store table {target.table} exists"
        )
