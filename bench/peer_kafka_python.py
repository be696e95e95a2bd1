#!/usr/bin/env python3
"""Peer (5): kafka-python (pure Python), manual commits every 500 messages.

The same work as the guide's batched loop, written the way kafka-python users
write it: KafkaConsumer with enable_auto_commit=False, iterate over the
consumer, json.loads each value, and commit synchronously (consumer.commit(),
which commits the positions of the messages handed out so far, i.e. exactly
the ones processed) every 500 messages or 5 s. Stops after --max-messages or
--max-seconds from the first assignment, whichever comes first.

Prints one line on stdout:
    RESULT name=kafka-python messages=N seconds=S rate=R commits=C
S is from the first partition assignment to the end of the last commit.
"""
import json
import sys
import time

from kafka import KafkaConsumer

import peer_common

try:
    from kafka import ConsumerRebalanceListener
except ImportError:  # older layouts
    from kafka.consumer.subscription_state import ConsumerRebalanceListener


def main() -> int:
    args = peer_common.parser(__doc__, "kafka-python", max_seconds=120.0).parse_args()

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # the iterator ends after this long without a message (safety net)
        consumer_timeout_ms=int(args.idle_seconds * 1000),
    )
    assigned_at = None

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            nonlocal assigned_at
            if assigned_at is None and assigned:
                assigned_at = time.monotonic()

    consumer.subscribe(topics=[args.topic], listener=Listener())

    consumed = 0
    commits = 0
    batch_count = 0
    last_commit_time = time.monotonic()
    stop_reason = "idle"
    for msg in consumer:
        data = json.loads(msg.value)  # noqa: F841 (the work being measured)
        consumed += 1
        batch_count += 1
        now = time.monotonic()
        if (batch_count >= peer_common.BATCH_SIZE
                or now - last_commit_time >= peer_common.COMMIT_INTERVAL_SECONDS):
            consumer.commit()  # synchronous
            commits += 1
            batch_count = 0
            last_commit_time = now
        if consumed >= args.max_messages:
            stop_reason = "max-messages"
            break
        if args.max_seconds and assigned_at is not None and now - assigned_at >= args.max_seconds:
            stop_reason = "time-budget"
            break
    if batch_count:
        consumer.commit()
        commits += 1
    end = time.monotonic()
    consumer.close(autocommit=False)

    peer_common.report(args.name, consumed, assigned_at, end, commits, 0, stop_reason)
    return 0 if consumed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
