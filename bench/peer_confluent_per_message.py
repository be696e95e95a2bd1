#!/usr/bin/env python3
"""Peer (4): the guide's basic loop with confluent-kafka, one synchronous commit per message.

This is the guide's first snippet ("Installation and Basic Consumer"):
poll(timeout=1.0), json.loads(msg.value().decode("utf-8")), then
consumer.commit(message=msg, asynchronous=False) for every message. It is
slow (one broker round trip per message), so the benchmark runs it on a
budget: --max-seconds from the first assignment or --max-messages, whichever
comes first, and reports the rate of what it did.

Left out of the guide's loop: the two print() calls per message and
process_order()'s print (a benchmark should not measure terminal output).

Prints one line on stdout:
    RESULT name=confluent-kafka-per-message messages=N seconds=S rate=R commits=C
S is from the first partition assignment to the end of the last commit.
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--max-messages", type=int, default=100_000)
    ap.add_argument("--max-seconds", type=float, default=30.0,
                    help="stop after this long from the first assignment (0: no limit)")
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--name", default="confluent-kafka-per-message")
    args = ap.parse_args()

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",   # start from beginning if no committed offset
        "enable.auto.commit": False,        # manual commit
        "session.timeout.ms": 30000,
        "max.poll.interval.ms": 300000,
    }

    consumer = Consumer(conf)
    assigned_at = None

    def on_assign(_consumer, _partitions):
        nonlocal assigned_at
        if assigned_at is None:
            assigned_at = time.monotonic()

    consumer.subscribe([args.topic], on_assign=on_assign)

    consumed = 0
    commits = 0
    last_msg_at = time.monotonic()
    stop_reason = "max-messages"
    try:
        while consumed < args.max_messages:
            now = time.monotonic()
            if args.max_seconds and assigned_at is not None and now - assigned_at >= args.max_seconds:
                stop_reason = "time-budget"
                break
            if now - last_msg_at >= args.idle_seconds:
                stop_reason = "idle"
                break

            msg = consumer.poll(timeout=1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pass
                else:
                    raise KafkaException(msg.error())
                continue

            data = json.loads(msg.value().decode("utf-8"))  # noqa: F841 (the work being measured)

            # Commit only after successful processing
            consumer.commit(message=msg, asynchronous=False)
            commits += 1
            consumed += 1
            last_msg_at = time.monotonic()
        end = time.monotonic()
    finally:
        consumer.close()

    seconds = end - (assigned_at if assigned_at is not None else end)
    rate = consumed / seconds if seconds > 0 else 0.0
    print(f"RESULT name={args.name} messages={consumed} seconds={seconds:.3f} rate={rate:.0f} "
          f"commits={commits} errors=0 stop={stop_reason}", flush=True)
    return 0 if consumed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
