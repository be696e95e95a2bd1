#!/usr/bin/env python3
"""Peer (5): the guide's batched loop with confluent-kafka, values decoded by its AvroDeserializer.

The loop is peer_confluent_batched.py's (the guide's "Offset Management"
snippet, peer_common.consume_batched): poll(timeout=0.1), decode each value,
track the highest offset + 1 per (topic, partition), commit those offsets
synchronously every 500 messages or every 5 s. The one change: process() is
confluent-kafka's AvroDeserializer (Confluent wire format: magic byte, schema
id, Avro binary) with a SchemaRegistryClient against --registry, the way its
documentation shows it:

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
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

import peer_common


def main() -> int:
    ap = peer_common.parser(__doc__, "confluent-kafka-avro")
    ap.add_argument("--registry", required=True, help="Schema Registry URL, e.g. http://127.0.0.1:8081")
    args = ap.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    avro_deserializer = AvroDeserializer(registry, conf={"subject.name.strategy.type": "TOPIC"})

    def process(msg):
        return avro_deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))

    # A bad record is counted, not fatal.
    return peer_common.consume_batched(args, process, failures=Exception)


if __name__ == "__main__":
    sys.exit(main())
