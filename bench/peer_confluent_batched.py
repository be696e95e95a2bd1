#!/usr/bin/env python3
"""Peer (3): the guide's "Offset Management" loop with confluent-kafka.

The loop (peer_common.consume_batched) is the guide's snippet
(seed/python-kafka-consumer-guide.txt, "Offset Management") kept as it is:
poll(timeout=0.1), json.loads per message, track the highest offset + 1 per
(topic, partition), and commit those offsets synchronously every 500 messages
or every 5 s. The only additions a benchmark needs: stop after --max-messages
(or --max-seconds), a last synchronous commit of what is pending, close(), and
one machine-readable line on stdout:

    RESULT name=confluent-kafka-batched messages=N seconds=S rate=R commits=C

S is measured from the first partition assignment (like `kc consume`) to the
end of the last commit; the benchmark harness measures wall-clock separately.
"""
import json
import sys

import peer_common


def process(msg) -> dict:
    return json.loads(msg.value())


def main() -> int:
    args = peer_common.parser(__doc__, "confluent-kafka-batched").parse_args()
    return peer_common.consume_batched(args, process)


if __name__ == "__main__":
    sys.exit(main())
