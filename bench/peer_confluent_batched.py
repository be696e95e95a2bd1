#!/usr/bin/env python3
"""Peer (3): the guide's "Offset Management" loop with confluent-kafka.

The loop below is the guide's snippet (seed/python-kafka-consumer-guide.txt,
"Offset Management") kept as it is: poll(timeout=0.1), json.loads per message,
track the highest offset + 1 per (topic, partition), and commit those offsets
synchronously every 500 messages or every 5 s. The only additions a benchmark
needs: stop after --max-messages (or --max-seconds), a last synchronous commit
of what is pending, close(), and one machine-readable line on stdout:

    RESULT name=confluent-kafka-batched messages=N seconds=S rate=R commits=C

S is measured from the first partition assignment (like `kc consume`) to the
end of the last commit; the benchmark harness measures wall-clock separately.
"""
import argparse
import json
import sys
import time
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, TopicPartition

COMMIT_INTERVAL_SECONDS = 5
BATCH_SIZE = 500


def process(value: bytes) -> dict:
    return json.loads(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--max-messages", type=int, default=1_000_000)
    ap.add_argument("--max-seconds", type=float, default=0.0,
                    help="stop after this long from the first assignment (0: no limit)")
    ap.add_argument("--idle-seconds", type=float, default=30.0,
                    help="give up after this long without a message (safety net)")
    ap.add_argument("--name", default="confluent-kafka-batched")
    args = ap.parse_args()

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }

    consumer = Consumer(conf)
    assigned_at = None

    def on_assign(_consumer, _partitions):
        # Not in the guide: only timestamps the first assignment. confluent-kafka
        # assigns the partitions itself when the callback does not.
        nonlocal assigned_at
        if assigned_at is None:
            assigned_at = time.monotonic()

    consumer.subscribe([args.topic], on_assign=on_assign)

    pending_offsets: dict[tuple, int] = defaultdict(int)
    last_commit_time = time.monotonic()
    batch_count = 0
    consumed = 0
    commits = 0
    errors = 0
    last_msg_at = time.monotonic()
    stop_reason = "max-messages"

    while consumed < args.max_messages:
        msg = consumer.poll(timeout=0.1)

        if msg and not msg.error():
            data = process(msg.value())

            # Track highest offset per (topic, partition)
            key = (msg.topic(), msg.partition())
            pending_offsets[key] = msg.offset() + 1  # +1 = next offset to consume
            batch_count += 1
            consumed += 1
            last_msg_at = time.monotonic()
        elif msg and msg.error().code() != KafkaError._PARTITION_EOF:
            errors += 1
            if errors <= 5:
                print(f"consumer error: {msg.error()}", file=sys.stderr)

        # Commit on batch size or time interval
        now = time.monotonic()
        should_commit = (
            batch_count >= BATCH_SIZE or
            (batch_count > 0 and now - last_commit_time >= COMMIT_INTERVAL_SECONDS)
        )

        if should_commit:
            offsets_to_commit = [
                TopicPartition(topic, partition, offset)
                for (topic, partition), offset in pending_offsets.items()
            ]
            consumer.commit(offsets=offsets_to_commit, asynchronous=False)
            pending_offsets.clear()
            batch_count = 0
            last_commit_time = now
            commits += 1
            # (the guide prints "Committed N partition offsets" here; a benchmark does not)

        if args.max_seconds and assigned_at is not None and now - assigned_at >= args.max_seconds:
            stop_reason = "time-budget"
            break
        if now - last_msg_at >= args.idle_seconds:
            stop_reason = "idle"
            break

    if pending_offsets:
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in pending_offsets.items()],
                        asynchronous=False)
        commits += 1
    end = time.monotonic()
    consumer.close()

    seconds = end - (assigned_at if assigned_at is not None else end)
    rate = consumed / seconds if seconds > 0 else 0.0
    print(f"RESULT name={args.name} messages={consumed} seconds={seconds:.3f} rate={rate:.0f} "
          f"commits={commits} errors={errors} stop={stop_reason}", flush=True)
    return 0 if stop_reason != "idle" or consumed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
