"""Crash injection: the real pipeline, as subprocesses, SIGKILLed at every step that matters.

Every case plays one small seeded history (with real Chroma deltas, in three parts) through

    ingest part 1 → compact (publishes S1) → ingest part 2 → [project] → compact (S2)
    → ingest part 3 → compact (S3)

and kills one step with ``RECEIPT_EVENTS_FAULT=<point>@<n>`` (``receipt_events/faults.py``):
the ``receipt-events`` CLI from the virtualenv SIGKILLs itself the n-th time it passes the
point. ``n`` is drawn per seed from the number of times a clean run of the same step passes
the point (counted once per seed on a reference run), so the kill lands at different passes:
another ingest batch, another Chroma write, another uploaded file. The steps killed: the
ingest of part 2 (``append.*``, SQLite, PostgreSQL and DynamoDB Local, killed before a
``TransactWriteItems``), the ``project`` or the second
``compact`` (``projection.*``), the second ``compact`` (``publish.*``, local store and S3 on
moto with the lock on DynamoDB Local).

The killed step must really have died (exit -9). It is then restarted without the fault, as
an operator or a scheduler would. Meanwhile the world goes on: for a killed projection or
publish, part 3 is ingested before the restart, so the restart finds a longer log (and a
restarted ``project`` uses another batch size); a killed ingest is restarted at once, as a
shard retries in order. A killed compactor's lock is still held: a compactor started at once
is refused, then the lock is waited out (``--lock-ttl 5``) or taken over by a party whose
clock says it has expired. After the finish:

* the log holds every event exactly once, in the order a clean ingest in another store has;
* the pointer names a complete snapshot at the head: a pull verifies every file, and its
  digest equals a clean rebuild from the log (anything else is a *divergence*);
* every snapshot the store lists verifies, nothing is in flight, the lock is released;
* a restart after ``publish.after_pointer`` publishes nothing new.

Right after the kill, before the restart, the partial state is checked too (the log a prefix
of the clean one, the in-flight note present or not, the pointer unmoved or naming a
complete snapshot).

Only the killed step and its restart run as subprocesses; the steps around them run the same
package code in this process, which keeps a case to a few seconds. Each case is recorded in
the figures (see ``tests/support/reliability_figures.py``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from receipt_chroma.lease import LeaseBusy
from receipt_events import faults
from tests.support.end_state_checks import final_checks, inflight, unverifiable_snapshots
from tests.support.log_contents import read_events, read_log
from tests.support.pipeline_site import FAULT_ENV, LOCK_TTL, PROJECT_BATCH, Site, compact_once
from tests.support.reliability_figures import record_case
from tests.support.reliability_profile import PROFILE, SEEDS
from tests.support.seeded_runs import SeedData, run_in_process, seed_built, step_argv


@dataclass(frozen=True)
class Scenario:
    point: str  # the fault point
    step: str  # the step killed: ingest (part 2), project, or compact (the second one)
    store: str = "sqlite"  # the event store: sqlite, postgres or dynamodb (DynamoDB Local)
    snapshots: str = "local"  # the snapshot store: local directory, or s3 (moto + DynamoDB)

    @property
    def id(self) -> str:
        return f"{self.point}/{self.step}/{self.store}/{self.snapshots}"

    def steps(self) -> list[str]:
        middle = ["project"] if self.step == "project" else []
        return ["ingest1", "compact", "ingest2", *middle, "compact"]

    @property
    def killed(self) -> int:
        """The index of the killed step: the second ingest, the project, the last compact."""
        steps = self.steps()
        if self.step == "ingest":
            return steps.index("ingest2")
        return len(steps) - 1 - steps[::-1].index(self.step)

    @property
    def grows(self) -> bool:
        """Whether part 3 of the stream is ingested between the kill and the restart: not for
        a killed ingest (a shard retries in order) nor after the pointer moved (the restart
        must then find nothing new)."""
        return self.step != "ingest" and self.point != "publish.after_pointer"

    @property
    def counted(self) -> str:
        """Which reference step's passes the kill is drawn from."""
        return {"ingest": "ingest2", "project": "project", "compact": "compact"}[self.step]


SCENARIOS = [
    Scenario("append.before_commit", "ingest", "sqlite"),
    Scenario("append.before_commit", "ingest", "postgres"),
    Scenario("append.before_commit", "ingest", "dynamodb"),
    Scenario("projection.after_chroma_write", "project"),
    Scenario("projection.after_chroma_write", "compact"),
    Scenario("projection.after_state_commit", "project"),
    Scenario("projection.after_state_commit", "compact"),
    *(
        Scenario(point, "compact", "sqlite", snapshots)
        for point in ("publish.mid_upload", "publish.before_pointer", "publish.after_pointer")
        for snapshots in ("local", "s3")
    ),
]
assert {scenario.point for scenario in SCENARIOS} == set(faults.POINTS)


def _marks(scenario: Scenario) -> list[pytest.MarkDecorator]:
    marks = []
    if scenario.store == "postgres":
        marks.append(pytest.mark.postgres)
    if scenario.snapshots == "s3" or scenario.store == "dynamodb":
        marks.append(pytest.mark.aws)
    return marks


def _cases() -> list[Any]:
    """Every kill point with every seed: on every variant (deep), or one variant a seed in
    turn (fast), with a seed again for a point that has more variants than seeds, so every
    variant runs in either profile."""
    cases = []
    for point in faults.POINTS:
        variants = [scenario for scenario in SCENARIOS if scenario.point == point]
        if PROFILE.every_variant:
            chosen = [(scenario, seed) for seed in SEEDS for scenario in variants]
        else:
            chosen = [
                (variants[index % len(variants)], SEEDS[index % len(SEEDS)])
                for index in range(max(len(variants), len(SEEDS)))
            ]
        cases += [
            pytest.param(scenario, seed, id=f"{scenario.id}#{seed}", marks=_marks(scenario))
            for scenario, seed in chosen
        ]
    return cases


CASES = _cases()


@pytest.fixture(scope="session")
def seed_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], SeedData]:
    """Each seed's inputs and reference run, built once a session (shared with the outages)."""
    return lambda seed: seed_built(seed, tmp_path_factory)


class Laps:
    """Seconds spent in each phase of a case, kept in its figures row."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.seconds: dict[str, float] = row.setdefault("seconds", {})
        self.last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self.last, 2)
        self.last = now


def free_dead_lock(site: Site, wait: bool) -> str:
    """The killed compactor's lock: wait out its expiry, or take it over and let it go."""
    lock = site.lock_record()
    still_held = "the killed compactor's lock should still be held"
    assert lock is not None, still_held
    assert lock.owner is not None, still_held
    if wait:
        time.sleep(max(0.0, lock.expires_at - time.time()) + 0.2)
        return "waited out the lock"
    # a takeover by a party whose clock says the lease has run out: the token moves on
    late = site.locks(clock=lambda: time.time() + LOCK_TTL + 1)
    late.acquire(site.lock, ttl=LOCK_TTL).release()
    return "took the lock over"


# --------------------------------------------------------------------------- the test


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    scenario: Scenario = request.node.callspec.params["scenario"]
    store_url = "sqlite:///" + str(tmp_path / "events.db")
    if scenario.store == "postgres":
        store_url = str(request.getfixturevalue("postgres_url"))
    if scenario.store == "dynamodb":
        # a fresh table on the session's DynamoDB Local; the killed CLI finds it through the
        # AWS variables aws_env put in os.environ (Site.env passes them on)
        store_url = str(request.getfixturevalue("dynamodb_url"))
    snapshots_url, lock_table = str(tmp_path / "store"), None
    if scenario.snapshots == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        snapshots_url = f"s3://{bucket}/snapshots"
        lock_table = str(request.getfixturevalue("lock_table"))
    return Site(tmp_path, store_url, snapshots_url, Path(), lock_table)


@pytest.mark.parametrize(("scenario", "seed"), CASES)
def test_a_killed_step_restarted_ends_equal_to_a_clean_rebuild(
    scenario: Scenario, seed: int, site: Site, seed_data: Callable[[int], SeedData]
) -> None:
    assert not os.environ.get(FAULT_ENV), f"{FAULT_ENV} must not be set for the test process"
    data = seed_data(seed)
    site.deltas = data.deltas
    passes = data.passes[scenario.counted][scenario.point]
    assert passes > 0, f"a clean {scenario.counted} never passes {scenario.point}"
    n = random.Random(f"{scenario.id}#{seed}").randint(1, passes)
    fault = f"{scenario.point}@{n}"
    row: dict[str, Any] = {
        "kill_point": scenario.point,
        "step": scenario.step,
        "seed": seed,
        "backend": f"{scenario.store}+{scenario.snapshots}",
        "died_at": f"{fault} (of {passes} passes)",
        "outcome": "error",
        "divergence": False,
    }
    problems: list[str] = []
    try:
        run_case(scenario, data, site, fault, row, problems)
        row["outcome"] = "recovered" if not problems else "; ".join(problems)
    except BaseException as error:
        row["outcome"] = f"error: {type(error).__name__}: {error}"
        row["crashes"] = 1
        raise
    finally:
        row["divergences"] = int(bool(row["divergence"]))
        record_case(f"crash/{scenario.id}", **row)
    assert not problems, "\n".join([*problems, "steps:", *site.runs])


def run_case(
    scenario: Scenario,
    data: SeedData,
    site: Site,
    fault: str,
    row: dict[str, Any],
    problems: list[str],
) -> None:
    steps = scenario.steps()
    rng = random.Random(f"restart:{scenario.id}#{row['seed']}")
    timer = Laps(row)
    for step in steps[: scenario.killed]:
        run_in_process(step, site, data)
    timer.lap("setup")
    killed_step = steps[scenario.killed]
    snapshots = site.snapshot_store()
    pointer_before, _ = snapshots.pointer()
    head_before = len(read_events(site.store_url))

    # the kill
    killed = site.cli(*step_argv(killed_step, site, data), fault=fault)
    row["exit"] = killed.returncode
    assert killed.returncode == -signal.SIGKILL, (
        f"{killed_step} with {FAULT_ENV}={fault} exited {killed.returncode}, not -9 (SIGKILL)\n"
        f"stdout: {killed.stdout}\nstderr: {killed.stderr}"
    )
    row["kills"] = 1
    timer.lap("kill")
    problems += state_after_kill(scenario, data, site, pointer_before, head_before)
    timer.lap("check_kill")

    # the world goes on while the step is down: part 3 of the stream is ingested, so the
    # restarted step finds a longer log (and a restarted project runs other batch sizes)
    if scenario.grows:
        run_in_process("ingest3", site, data)
    if killed_step == "compact":
        try:
            compact_once(site)
        except LeaseBusy:
            pass  # the dead compactor's lease is still live: nobody may publish yet
        else:
            problems.append("a compactor got the lock while the dead one's lease was live")
        wait = scenario.point == "publish.before_pointer" and row["seed"] % 5 == 1
        row["lock"] = free_dead_lock(site, wait)
    pointer_killed, _ = snapshots.pointer()
    timer.lap("lock")

    # the restart, without the fault
    batch_size = PROJECT_BATCH
    if killed_step == "project":
        # often all at once, as a hand-run `project` (default 1000) would: a restart that
        # does not redo the killed batch exactly shows most often then
        batch_size = rng.choice((1, 3, 4, 7, 1000, 1000, 1000, 1000))
        row["restart_batch"] = batch_size
    restarted = site.cli(*step_argv(killed_step, site, data, batch_size))
    timer.lap("restart")
    if restarted.returncode != 0:
        problems.append(
            f"the restarted {killed_step} failed with exit {restarted.returncode}: "
            f"{restarted.stderr.strip()}"
        )
        return
    if scenario.point == "publish.after_pointer":
        result = json.loads(restarted.stdout)
        pointer_now, _ = snapshots.pointer()
        if pointer_now != pointer_killed and (
            pointer_now is None
            or pointer_killed is None
            or pointer_now.digest != pointer_killed.digest
        ):
            problems.append(
                f"after publish.after_pointer the restart published something new: {result}"
            )

    # finish: the rest of the pipeline, the rest of the stream, a last compaction
    for step in steps[scenario.killed + 1 :]:
        run_in_process(step, site, data)
    if not scenario.grows:
        run_in_process("ingest3", site, data)
    run_in_process("compact", site, data)
    timer.lap("finish")
    problems += final_checks(data, site, row)
    timer.lap("final_checks")


def state_after_kill(
    scenario: Scenario, data: SeedData, site: Site, pointer_before: Any, head_before: int
) -> list[str]:
    """What must hold right after the kill, before anything is restarted."""
    problems: list[str] = []
    events, positions = read_log(site.store_url)
    if scenario.point == "append.before_commit":
        # the batches committed before the kill, and nothing of the killed one
        if events != data.events[: len(events)] or not (
            head_before <= len(events) < data.through_part2
        ):
            problems.append(
                f"after a kill mid-append the log is not a prefix of the clean log "
                f"({len(events)} events, {head_before} before, {data.through_part2} after part 2)"
            )
        return problems
    if events != data.events[: data.through_part2]:
        problems.append("the log changed although no append was killed")
    if scenario.step == "project":
        _checkpoint, noted = inflight(site.cache)
        expect_inflight = scenario.point == "projection.after_chroma_write"
        if (noted is not None) != expect_inflight:
            problems.append(
                f"after {scenario.point} the snapshot directory's in-flight note is {noted}"
            )
    snapshots = site.snapshot_store()
    pointer, _ = snapshots.pointer()
    if scenario.point == "publish.after_pointer":
        if pointer is None or pointer == pointer_before or pointer.position != positions[-1]:
            problems.append(f"after publish.after_pointer the pointer is {pointer}")
    elif pointer != pointer_before:
        problems.append(f"the pointer moved ({pointer_before} → {pointer}) before the swap")
    problems += unverifiable_snapshots(site, site.root / "verify-after-kill")
    return problems


def test_every_fault_point_is_covered_in_this_profile() -> None:
    assert {scenario.point for scenario in SCENARIOS} == set(faults.POINTS)
    assert len(SEEDS) == PROFILE.seeds >= 2
    # every variant (each backend of each kill point) runs, whatever the profile
    assert {case.values[0] for case in CASES} == set(SCENARIOS)
