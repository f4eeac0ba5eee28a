"""OS processes appending to one store while the test process tails it: two on SQLite and
PostgreSQL, four on DynamoDB (DynamoDB Local).

Each appender appends its own events in batches of 50 (2,000 on SQLite and PostgreSQL, fewer
on DynamoDB Local, which is slow); every other batch also carries 20 of the *next*
appender's events from the same batch index (A carries B's, B carries A's, or round a ring of
four), so appenders race to store the same events (dedup under contention). The appenders
meet at a barrier every few batches, so they really do append at the same time. Meanwhile
this process tails the log with ``read(after=last_seen)``. The store must keep every distinct
event exactly once, hand out strictly increasing positions in commit order (so the tailer
misses nothing; on DynamoDB exactly 1..N, no gaps), and keep each appender's own order.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import wait
from pathlib import Path

import pytest

from receipt_events.store import Recorded, open_store
from tests.store.helpers import event_id as id_of
from tests.store.helpers import read_all
from tests.store.workers import AppendPlan, append_in_batches, open_and_append, read_results

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 60
TAIL_PAGE = 300
WORKERS = ("A", "B")
DYNAMODB_WORKERS = ("A", "B", "C", "D")
DYNAMODB_COUNT = 400  # events of each DynamoDB appender: DynamoDB Local is slow


def make_plans(workers: Sequence[str], count: int | None) -> list[AppendPlan]:
    """One plan per worker; each also carries some of the next worker's events (a ring)."""
    token = uuid.uuid4().hex[:8]
    sizes = {} if count is None else {"count": count}
    return [
        AppendPlan(token=token, worker=worker, other=workers[(i + 1) % len(workers)], **sizes)
        for i, worker in enumerate(workers)
    ]


def run_appenders_and_tail(
    url: str, tmp_path: Path, workers: Sequence[str] = WORKERS, count: int | None = None
) -> tuple[list[AppendPlan], list[Recorded]]:
    """Run the appenders; tail the log until they have exited; return the plans and the tail."""
    plans = make_plans(workers, count)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(plans) + 1)
    rounds = context.Barrier(len(plans))
    processes = [
        context.Process(
            target=append_in_batches,
            args=(url, plan, start, rounds, str(tmp_path / f"appender-{plan.worker}.json")),
            name=f"appender-{plan.worker}",
        )
        for plan in plans
    ]
    tailed: list[Recorded] = []
    pages_while_appending = 0
    with open_store(url) as tail:
        for process in processes:
            process.start()
        try:
            start.wait(timeout=DEADLINE_SECONDS)  # every appender has opened the store
            deadline = time.monotonic() + DEADLINE_SECONDS
            last_seen = 0
            while True:
                finished = all(p.exitcode is not None for p in processes)
                page = tail.read(after=last_seen, limit=TAIL_PAGE)
                tailed += page
                if page:
                    last_seen = page[-1].position
                    pages_while_appending += not finished
                elif finished:
                    break  # they had exited before this read, and it found nothing new
                else:
                    assert time.monotonic() < deadline, "appenders did not finish in time"
                    wait([p.sentinel for p in processes], timeout=0.01)  # an exit, or poll again
        except BaseException:
            for process in processes:
                process.terminate()
            raise
        finally:
            for process in processes:
                process.join()
    for process in processes:
        assert process.exitcode == 0, f"{process.name} failed (exit code {process.exitcode})"
    assert pages_while_appending >= 2, "the tailer never read while the log was growing"
    return plans, tailed


def check_log(
    url: str,
    tmp_path: Path,
    plans: list[AppendPlan],
    tailed: list[Recorded],
    *,
    gapless: bool = False,
) -> None:
    with open_store(url) as store:
        log = read_all(store)
        head = store.head()

    # every distinct event exactly once, decoded as appended
    expected = {id_of(event): event for plan in plans for event in plan.own()}
    logged_ids = [id_of(r.event) for r in log]
    duplicates = [i for i, n in Counter(logged_ids).items() if n > 1]
    assert duplicates == []
    assert set(logged_ids) == set(expected)
    assert len(log) == len(plans) * plans[0].count
    assert all(r.event == expected[id_of(r.event)] for r in log)

    # strictly increasing positions, and the tailer saw exactly the log, in order
    positions = [r.position for r in log]
    assert all(a < b for a, b in itertools.pairwise(positions))
    if gapless:
        assert positions == list(range(1, len(log) + 1))
    assert head == positions[-1]
    assert [r.position for r in tailed] == positions, "the tailer missed or repeated events"
    assert tailed == log

    # what each appender was told matches the log, and its own order is kept
    position_of = {id_of(r.event): r.position for r in log}
    stored_by: dict[str, str] = {}
    submitted = 0
    for plan in plans:
        returned: list[int] = []
        for ids, batch_positions in read_results(tmp_path / f"appender-{plan.worker}.json"):
            assert len(ids) == len(batch_positions)
            submitted += len(ids)
            for event_id, position in zip(ids, batch_positions, strict=True):
                if position is not None:
                    assert position == position_of[event_id]
                    assert event_id not in stored_by, f"{event_id} stored twice"
                    stored_by[event_id] = plan.worker
                    returned.append(position)
        assert returned == sorted(returned), f"appender {plan.worker}'s order was not kept"
        assert len(set(returned)) == len(returned)
    assert set(stored_by) == set(expected)  # each event was new to exactly one appender
    assert submitted > len(expected)  # so some appends were duplicates, under contention

    # the appenders really did interleave (otherwise this test proves little)
    writers = [stored_by[event_id] for event_id in logged_ids]
    switches = sum(a != b for a, b in itertools.pairwise(writers))
    assert switches >= len(plans), f"appends did not interleave: {switches} switch(es)"
    assert set(writers) == {plan.worker for plan in plans}


def test_concurrent_appenders_and_a_tailer_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    plans, tailed = run_appenders_and_tail(sqlite_url, tmp_path)
    check_log(sqlite_url, tmp_path, plans, tailed)


@pytest.mark.postgres
def test_concurrent_appenders_and_a_tailer_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    plans, tailed = run_appenders_and_tail(postgres_url, tmp_path)
    check_log(postgres_url, tmp_path, plans, tailed)


def test_four_concurrent_appenders_and_a_tailer_on_dynamodb(
    dynamodb_url: str, tmp_path: Path
) -> None:
    """The children reach DynamoDB Local through the AWS variables ``aws_env`` set in this
    process's environment, which spawned processes inherit."""
    plans, tailed = run_appenders_and_tail(
        dynamodb_url, tmp_path, DYNAMODB_WORKERS, count=DYNAMODB_COUNT
    )
    check_log(dynamodb_url, tmp_path, plans, tailed, gapless=True)


OPENERS = 4


def open_at_once(url: str) -> None:
    """OPENERS processes open the store at the same moment; each appends its one event."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(OPENERS)
    processes = [
        context.Process(target=open_and_append, args=(url, f"opener-{i}", start))
        for i in range(OPENERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=DEADLINE_SECONDS)
        if process.exitcode is None:
            process.terminate()
            process.join()
    assert [p.exitcode for p in processes] == [0] * OPENERS


def check_opening_at_once(url: str) -> None:
    expected = [f"opener-{i}-0" for i in range(OPENERS)]
    open_at_once(url)  # the first use of the URL: tables (and schema) do not exist yet
    with open_store(url) as store:
        assert sorted(id_of(r.event) for r in read_all(store)) == expected
    open_at_once(url)  # again, now that everything exists (the events are duplicates)
    with open_store(url) as store:
        assert sorted(id_of(r.event) for r in read_all(store)) == expected


def test_processes_opening_a_new_sqlite_store_at_once(sqlite_url: str) -> None:
    check_opening_at_once(sqlite_url)


@pytest.mark.postgres
def test_processes_opening_a_new_postgres_store_at_once(postgres_url: str) -> None:
    check_opening_at_once(postgres_url)


def test_processes_appending_first_to_a_new_dynamodb_table_at_once(dynamodb_url: str) -> None:
    """The table exists (``store create-table``), its counter item does not yet: every first
    append races to create it."""
    check_opening_at_once(dynamodb_url)
    with open_store(dynamodb_url) as store:
        assert [r.position for r in read_all(store)] == [1, 2, 3, 4]
