"""The generator's entry point: run every writer on one timeline, then merge the stream.

Images arrive one after another; each receipt then lives on its own clock, so receipts
interleave. The writers' records are merged by time, numbered as a shard numbers them, and
redeliveries are woven in last.
"""

from __future__ import annotations

import gc
import random
from typing import Any

from synthetic.history import ids
from synthetic.history.config import HistoryConfig, check_config
from synthetic.history.locks import write_locks
from synthetic.history.model import History, RunContent
from synthetic.history.ocr import insert_image
from synthetic.history.receipt import Receipt
from synthetic.history.redeliveries import redeliver
from synthetic.history.reference import MERCHANTS
from synthetic.history.stream import Stream


def generate_history(config: HistoryConfig = HistoryConfig()) -> History:
    """Simulate every writer on one timeline and return the stream they produced."""
    check_config(config)
    collecting = gc.isenabled()
    gc.disable()  # millions of small dicts and no cycles: the collector only slows this down
    try:
        return _generate(config)
    finally:
        if collecting:
            gc.enable()


def _generate(config: HistoryConfig) -> History:
    rng = random.Random(config.seed)
    stream = Stream(config, rng)
    image_count = max(1, config.receipts // 2)
    per_image = [1 if index < config.receipts else 0 for index in range(image_count)]
    for _ in range(config.receipts - sum(per_image)):
        per_image[rng.randrange(image_count)] += 1
    t = config.start_time
    for index, receipts in enumerate(per_image):
        if index:
            t += int(rng.expovariate(1 / 45)) + 1
        image_id = ids.random_uuid(rng)
        insert_image(stream, t, image_id, receipts)
        start = t + rng.randint(2, 20)
        for receipt_id in range(1, receipts + 1):
            merchant = rng.choice(MERCHANTS)
            Receipt(stream, image_id, receipt_id, merchant, start + rng.randint(0, 5)).live()
    write_locks(stream)
    return _finish(stream)


def _finish(stream: Stream) -> History:
    """Merge the writers' records by time, number them, and weave in the redeliveries."""
    rng = stream.rng
    ops = sorted(stream.ops)  # (time, order): per item, the order it happened in
    sequence = 4 * 10**26 + rng.getrandbits(64)
    records: list[dict[str, Any]] = []
    intents: list[str] = []
    runs: list[RunContent] = []
    for _t, order, record, intent in ops:
        sequence += rng.getrandbits(20) + 1  # random gaps, as shards and other tables leave
        record["dynamodb"]["SequenceNumber"] = str(sequence)
        records.append(record)
        intents.append(intent)
        if intent == "run_insert":
            runs.append(stream.runs[order])
    records, intents = redeliver(rng, records, intents, stream.config.redelivery_rate)
    return History(records=records, intents=intents, runs=runs)
