"""Crash injection: the real pipeline, as subprocesses, SIGKILLed at every step that matters.

Every case plays one small seeded history (with real Chroma deltas, in three parts) through

    ingest part 1 → compact (publishes S1) → ingest part 2 → [project] → compact (S2)
    → ingest part 3 → compact (S3)

and kills one step with ``RECEIPT_EVENTS_FAULT=<point>@<n>`` (``receipt_events/faults.py``):
the ``receipt-events`` CLI from the virtualenv SIGKILLs itself the n-th time it passes the
point. ``n`` is drawn per seed from the number of times a clean run of the same step passes
the point (counted once per seed on a reference run), so the kill lands at different passes:
another ingest batch, another Chroma write, another uploaded file. The steps killed: the
ingest of part 2 (``append.*``, SQLite and PostgreSQL), the ``project`` or the second
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
the figures (see ``conftest.py``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from projections.compaction import CompactOptions, CompactResult, compact, lease_name
from projections.restore import restore
from projections.runner import catch_up, rebuild
from projections.snapshot_dir import open_snapshot
from receipt_chroma.deltas import DeltaSources
from receipt_chroma.lease import DynamoDBLeases, FileLeases, LeaseBusy, Leases
from receipt_chroma.snapshots import SnapshotStore, open_snapshot_store
from receipt_events import faults
from receipt_events.ingest import IngestSummary, ingest
from receipt_events.records import read_input
from receipt_events.store import Recorded, open_store
from synthetic.deltas import write_run_deltas
from synthetic.history import HistoryConfig, generate_history, to_jsonl
from tests.reliability.conftest import PROFILE, SEEDS, record_case

CLI = Path(sys.executable).with_name("receipt-events")
FAULT_ENV = "RECEIPT_EVENTS_FAULT"
DIMENSION = 8
INGEST_BATCH = 8  # events per append transaction: several commits per ingest
PROJECT_BATCH = 6  # events per projection batch: several batches per project
LOCK_TTL = 5.0  # the CLI's minimum: a dead compactor's lock is free again 5 s later
STEP_TIMEOUT = 300

Events = list[tuple[str, bytes]]  # (originator id, encoded event) in log order


@dataclass(frozen=True)
class Scenario:
    point: str  # the fault point
    step: str  # the step killed: ingest (part 2), project, or compact (the second one)
    store: str = "sqlite"  # the event store: sqlite or postgres
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
    if scenario.snapshots == "s3":
        marks.append(pytest.mark.aws)
    return marks


def _cases() -> list[Any]:
    """Every kill point with every seed: on every variant (deep), or one variant a seed (fast)."""
    cases = []
    for point in faults.POINTS:
        variants = [scenario for scenario in SCENARIOS if scenario.point == point]
        for index, seed in enumerate(SEEDS):
            chosen = variants if PROFILE.every_variant else [variants[index % len(variants)]]
            cases += [
                pytest.param(scenario, seed, id=f"{scenario.id}#{seed}", marks=_marks(scenario))
                for scenario in chosen
            ]
    return cases


CASES = _cases()


# --------------------------------------------------------------------------- the history


def history_config(seed: int) -> HistoryConfig:
    return HistoryConfig(
        seed=seed,
        receipts=3,
        lines_per_receipt=(2, 5),
        words_per_line=(1, 3),
        letters_per_word=(0, 1),
        removal_rate=0.3,
    )


@dataclass
class SeedData:
    """One seed's inputs (three parts of a stream, the deltas) and its clean reference run."""

    seed: int
    deltas: Path
    parts: dict[str, Path]  # ingest1 / ingest2 / ingest3 → that part of the stream
    events: Events  # the clean log
    positions: list[int]  # its positions
    through_part2: int  # how many of its events parts 1 and 2 hold
    passes: dict[str, Counter[str]]  # reference step → fault point → times passed
    digest: str  # the reference's final published digest
    position: int


def _cuts(intents: list[str], rng: random.Random) -> tuple[int, int]:
    """Where parts 2 and 3 start. Part 1 ends between the first two embedding runs and part 2
    soon after the second, so the first snapshot has records, the killed steps write vectors
    as well as metadata, and part 3 goes on changing (relabelling, removing) what part 2
    wrote: a restart that does not redo a killed batch exactly is caught."""
    runs = [index for index, intent in enumerate(intents) if intent == "run_insert"]
    assert len(runs) >= 2, "a history with fewer than two embedding runs"
    first = rng.randint(runs[0] + 1, runs[1])
    second = rng.randint(runs[1] + 1, max(runs[1] + 1, (runs[1] + 2 * len(intents)) // 3))
    return first, min(second, len(intents))


def build_seed(seed: int, root: Path) -> SeedData:
    history = generate_history(history_config(seed))
    rng = random.Random(seed)
    deltas = root / "deltas"
    for run in history.runs:
        write_run_deltas(
            run, deltas, dimension=DIMENSION, layout="tarball" if seed % 3 == 0 else "directory"
        )
    first, second = _cuts(history.intents, rng)
    parts = {f"ingest{index}": root / f"part{index}.jsonl" for index in (1, 2, 3)}
    parts["ingest1"].write_bytes(to_jsonl(history.records[:first]))
    parts["ingest2"].write_bytes(to_jsonl(history.records[first:second]))
    parts["ingest3"].write_bytes(to_jsonl(history.records[second:]))

    # the clean reference: the same steps in this process, counting each fault point
    reference = Site(
        root=root / "reference",
        store_url="sqlite:///" + str(root / "reference" / "events.db"),
        snapshots_url=str(root / "reference" / "store"),
        deltas=deltas,
    )
    ingest_file(reference, parts["ingest1"])
    compact_once(reference)
    passes: dict[str, Counter[str]] = {}
    with counting_faults() as passes["ingest2"]:
        ingest_file(reference, parts["ingest2"])
    shutil.copytree(reference.cache, reference.root / "project-cache")
    with counting_faults() as passes["project"]:
        project_dir(reference, reference.root / "project-cache", PROJECT_BATCH)
    with counting_faults() as passes["compact"]:
        assert compact_once(reference).published
    through_part2 = len(read_events(reference.store_url))
    ingest_file(reference, parts["ingest3"])
    compact_once(reference)
    pointer, _ = reference.snapshot_store().pointer()
    assert pointer is not None
    events, positions = read_log(reference.store_url)
    assert pointer.position == positions[-1]
    return SeedData(
        seed=seed,
        deltas=deltas,
        parts=parts,
        events=events,
        positions=positions,
        through_part2=through_part2,
        passes=passes,
        digest=pointer.digest,
        position=pointer.position,
    )


_built: dict[int, SeedData] = {}  # for the whole session (the outage tests use them too)


def seed_built(seed: int, tmp_path_factory: pytest.TempPathFactory) -> SeedData:
    if seed not in _built:
        _built[seed] = build_seed(seed, tmp_path_factory.mktemp(f"seed-{seed}"))
    return _built[seed]


@pytest.fixture(scope="session")
def seed_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], SeedData]:
    return lambda seed: seed_built(seed, tmp_path_factory)


@contextmanager
def counting_faults() -> Iterator[Counter[str]]:
    """Count the fault points passed in this process (no fault is armed here)."""
    counts: Counter[str] = Counter()
    guard = threading.Lock()
    original = faults.point

    def point(name: str) -> None:
        with guard:
            counts[name] += 1
        original(name)

    faults.point = point
    try:
        yield counts
    finally:
        faults.point = original


# --------------------------------------------------------------------------- one site


@dataclass
class Site:
    """Where one case runs: its event store, snapshot store, lock, cache and deltas."""

    root: Path
    store_url: str
    snapshots_url: str
    deltas: Path
    lock_table: str | None = None
    runs: list[str] = field(default_factory=list)  # what ran, for failure messages

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def snapshot_store(self) -> SnapshotStore:
        return open_snapshot_store(self.snapshots_url)

    def locks(self, clock: Callable[[], float] = time.time) -> Leases:
        if self.lock_table is not None:
            return DynamoDBLeases(self.lock_table, clock=clock)
        return FileLeases(Path(self.snapshots_url), clock=clock)

    @property
    def lock(self) -> str:
        return lease_name(self.snapshot_store())

    def lock_record(self) -> tuple[str | None, float]:
        """The publish lock's owner (None when released) and expiry, read directly."""
        locks = self.locks()
        raw = locks.read(self.lock)  # type: ignore[attr-defined]
        if raw is None:
            return None, 0.0
        if isinstance(locks, DynamoDBLeases):
            return raw.get("owner", {}).get("S"), float(raw["expires_at"]["N"])
        return raw.get("owner"), float(raw["expires_at"])

    def env(self, fault: str | None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key != FAULT_ENV}
        env.update(
            RECEIPT_EVENTS_STORE=self.store_url,
            RECEIPT_EVENTS_DELTAS=str(self.deltas),
            RECEIPT_EVENTS_CACHE=str(self.root / "default-cache"),
            COLUMNS="200",
        )
        if self.lock_table is not None:
            env["RECEIPT_EVENTS_LOCK_TABLE"] = self.lock_table
        if fault is not None:
            env[FAULT_ENV] = fault
        return env

    def cli(self, *args: str | Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(CLI), *(str(arg) for arg in args)]
        self.runs.append(" ".join(argv[1:]) + (f"  [{FAULT_ENV}={fault}]" if fault else ""))
        return subprocess.run(
            argv,
            env=self.env(fault),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )


def ingest_file(site: Site, path: Path) -> IngestSummary:
    store = open_store(site.store_url)
    try:
        return ingest(store, read_input(path.read_bytes(), str(path)), batch_size=INGEST_BATCH)
    finally:
        store.close()


def project_dir(site: Site, directory: Path, batch_size: int) -> None:
    store = open_store(site.store_url)
    try:
        with open_snapshot(directory) as snapshot:
            catch_up(store, snapshot, DeltaSources(str(site.deltas)), batch_size=batch_size)
    finally:
        store.close()


def compact_once(site: Site) -> CompactResult:
    store = open_store(site.store_url)
    try:
        return compact(
            store,
            site.snapshot_store(),
            site.locks(),
            DeltaSources(str(site.deltas)),
            site.cache,
            CompactOptions(lease_ttl=LOCK_TTL),
        )
    finally:
        store.close()


def events_of(recorded: Iterable[Recorded]) -> Events:
    """Each recorded event as (originator id, encoded event), positions left out."""
    return [(r.event.originator_id, msgspec.json.encode(r.event)) for r in recorded]


def read_log(url: str) -> tuple[Events, list[int]]:
    """The log's events (without their positions) and, apart, their positions."""
    store = open_store(url)
    try:
        recorded = list(store.iter_events())
    finally:
        store.close()
    return events_of(recorded), [r.position for r in recorded]


def read_events(url: str) -> Events:
    return read_log(url)[0]


def step_argv(
    step: str, site: Site, data: SeedData, batch_size: int = PROJECT_BATCH
) -> list[str | Path]:
    if step.startswith("ingest"):
        return ["ingest", data.parts[step], "--batch-size", str(INGEST_BATCH), "--json"]
    if step == "project":
        return ["project", "--snapshot-dir", site.cache, "--batch-size", str(batch_size), "--json"]
    assert step == "compact"
    return [
        "compact",
        "--snapshot-store",
        site.snapshots_url,
        "--snapshot-dir",
        site.cache,
        "--lease-ttl",
        str(int(LOCK_TTL)),
        "--json",
    ]


def run_in_process(step: str, site: Site, data: SeedData) -> None:
    site.runs.append(f"{step} (in process)")
    if step.startswith("ingest"):
        ingest_file(site, data.parts[step])
    elif step == "project":
        project_dir(site, site.cache, PROJECT_BATCH)
    else:
        compact_once(site)


class Laps:
    """Seconds spent in each phase of a case, kept in its figures row."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.seconds: dict[str, float] = row.setdefault("seconds", {})
        self.last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self.last, 2)
        self.last = now


# --------------------------------------------------------------------------- checks


def inflight(directory: Path) -> tuple[int, int | None]:
    """A snapshot directory's checkpoint and in-flight batch end."""
    with open_snapshot(directory, create=False) as snapshot:
        return snapshot.state.checkpoint, snapshot.state.inflight_to


def unverifiable_snapshots(site: Site, scratch: Path) -> list[str]:
    """Every snapshot the store lists must download with every file matching its manifest."""
    problems = []
    snapshots = site.snapshot_store()
    for index, manifest in enumerate(snapshots.manifests()):
        target = scratch / f"listed-{index}"
        try:
            snapshots.download(manifest.key, target)
        except Exception as error:
            problems.append(f"listed snapshot {manifest.key} does not verify: {error}")
        finally:
            shutil.rmtree(target, ignore_errors=True)
    return problems


def orphaned_keys(site: Site) -> int:
    """Snapshot keys holding files but no manifest: what an interrupted publish leaves behind.

    Invisible to readers (never listed, never pulled) and never deleted by retention, which
    only deletes listed snapshots: counted in the figures, not a failure.
    """
    backend = site.snapshot_store().backend
    keys = {key.split("/")[1] for key in backend.list_keys("snapshots/") if key.count("/") >= 2}
    listed = {manifest.key for manifest in site.snapshot_store().manifests()}
    return len(keys - listed)


def pulled_digest(site: Site, target: Path) -> tuple[int, str]:
    """Pull the latest snapshot (every file checked) and digest what was pulled."""
    result = restore(site.snapshot_store(), target)
    return result.position, result.digest


def free_dead_lock(site: Site, wait: bool) -> str:
    """The killed compactor's lock: wait out its expiry, or take it over and let it go."""
    owner, expires_at = site.lock_record()
    assert owner is not None, "the killed compactor's lock should still be held"
    if wait:
        time.sleep(max(0.0, expires_at - time.time()) + 0.2)
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


def final_checks(data: SeedData, site: Site, row: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    events, positions = read_log(site.store_url)
    ids = [originator for originator, _ in events]
    clean_ids = {originator for originator, _ in data.events}
    row["events"] = len(events)
    row["lost_updates"] = len(clean_ids - set(ids))
    row["doubled"] = len(ids) - len(set(ids))
    if events != data.events:
        problems.append(
            f"the log differs from a clean ingest: {len(events)} events vs {len(data.events)}, "
            f"{row['lost_updates']} missing, {row['doubled']} doubled"
        )

    pointer, _ = site.snapshot_store().pointer()
    store = open_store(site.store_url)
    try:
        head = store.head()
        clean = rebuild(store, site.root / "clean-rebuild", DeltaSources(str(site.deltas)))
    finally:
        store.close()
    if pointer is None:
        problems.append("nothing was published")
        row["divergence"] = True
        return problems
    if pointer.position != head:
        problems.append(f"the pointer is at {pointer.position}, the log's head at {head}")
        row["divergence"] = True
    try:
        position, digest = pulled_digest(site, site.root / "pulled")
    except Exception as error:
        problems.append(f"pulling the latest snapshot failed: {type(error).__name__}: {error}")
        row["divergence"] = True
        return problems
    row["digest"] = digest
    if not (digest == pointer.digest == clean.digest and position == clean.position):
        row["divergence"] = True
        problems.append(
            f"DIVERGENCE: published {pointer.digest} at {pointer.position}, pulled {digest} at "
            f"{position}, clean rebuild {clean.digest} at {clean.position}"
        )
    if (events, positions) == (data.events, data.positions) and digest != data.digest:
        # (a store may leave gaps in positions, e.g. PostgreSQL after a rolled-back append:
        # the digest covers the position, so only an identically numbered log must match)
        problems.append(f"the same log as the reference, another digest: {digest} ≠ {data.digest}")
    problems += unverifiable_snapshots(site, site.root / "verify-final")
    row["orphaned_keys"] = orphaned_keys(site)
    _checkpoint, noted = inflight(site.cache)
    if noted is not None:
        problems.append(f"the compactor's cache is left with a batch in flight (to {noted})")
    owner, _ = site.lock_record()
    if owner is not None:
        problems.append(f"the publish lock is left held by {owner}")
    return problems


def test_every_fault_point_is_covered_in_this_profile() -> None:
    assert {scenario.point for scenario in SCENARIOS} == set(faults.POINTS)
    assert len(SEEDS) == PROFILE.seeds >= 2
