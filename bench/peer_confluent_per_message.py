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
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException

import peer_common


def main() -> int:
    args = peer_common.parser(__doc__, "confluent-kafka-per-message", max_messages=100_000,
                              max_seconds=30.0).parse_args()

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",   # start from beginning if no committed offset
        "enable.auto.commit": False,        # manual commit
        "session.timeout.ms": 30000,
        "max.poll.interval.ms": 300000,
    }

    consumer = Consumer(conf)
    first_assignment = peer_common.FirstAssignment()
    consumer.subscribe([args.topic], on_assign=first_assignment)

    consumed = 0
    commits = 0
    last_msg_at = time.monotonic()
    stop_reason = "max-messages"
    try:
        while consumed < args.max_messages:
            now = time.monotonic()
            if spent := peer_common.budget_spent(args, first_assignment.at, now, last_msg_at):
                stop_reason = spent
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

    peer_common.report(args.name, consumed, first_assignment.at, end, commits, 0, stop_reason)
    return 0 if consumed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
