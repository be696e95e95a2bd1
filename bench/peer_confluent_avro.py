#!/usr/bin/env python3
"""Peer (5): the guide's batched loop with confluent-kafka, values decoded by its AvroDeserializer.

The loop is peer_confluent_batched.py's (the guide's "Offset Management"
snippet): poll(timeout=0.1), decode each value, track the highest offset + 1
per (topic, partition), commit those offsets synchronously every 500 messages
or every 5 s. The one change: process() is confluent-kafka's AvroDeserializer
(Confluent wire format: magic byte, schema id, Avro binary) with a
SchemaRegistryClient against --registry, the way its documentation shows it:

    avro_deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))

The writer schema is fetched once per schema id (the client caches it), then
every value is decoded by fastavro into Python objects (dicts, Decimal,
datetime, ...). The subject name strategy is set to TOPIC: confluent-kafka
2.16's default (ASSOCIATED) would first ask the registry for associations of
the topic, one extra request, and fall back to TOPIC.

Stops after --max-messages (or --max-seconds), commits what is pending,
closes, and prints one machine-readable line on stdout:

    RESULT name=confluent-kafka-avro messages=N seconds=S rate=R commits=C errors=E stop=WHY

S is measured from the first partition assignment (like `kc consume`) to the
end of the last commit. A value that does not decode counts as an error
(first five on stderr) and is not counted as consumed.
"""
import argparse
import sys
import time
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

COMMIT_INTERVAL_SECONDS = 5
BATCH_SIZE = 500


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--registry", required=True, help="Schema Registry URL, e.g. http://127.0.0.1:8081")
    ap.add_argument("--max-messages", type=int, default=1_000_000)
    ap.add_argument("--max-seconds", type=float, default=0.0,
                    help="stop after this long from the first assignment (0: no limit)")
    ap.add_argument("--idle-seconds", type=float, default=30.0,
                    help="give up after this long without a message (safety net)")
    ap.add_argument("--name", default="confluent-kafka-avro")
    args = ap.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    avro_deserializer = AvroDeserializer(registry, conf={"subject.name.strategy.type": "TOPIC"})

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }

    consumer = Consumer(conf)
    assigned_at = None

    def on_assign(_consumer, _partitions):
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
            try:
                avro_deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
                consumed += 1
            except Exception as e:  # noqa: BLE001 -- a bad record is counted, not fatal
                errors += 1
                if errors <= 5:
                    print(f"decode error at {msg.topic()}[{msg.partition()}]@{msg.offset()}: "
                          f"{type(e).__name__}: {e}", file=sys.stderr)

            key = (msg.topic(), msg.partition())
            pending_offsets[key] = msg.offset() + 1  # +1 = next offset to consume
            batch_count += 1
            last_msg_at = time.monotonic()
        elif msg and msg.error().code() != KafkaError._PARTITION_EOF:
            errors += 1
            if errors <= 5:
                print(f"consumer error: {msg.error()}", file=sys.stderr)

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
