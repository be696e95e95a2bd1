"""What the Python peers (bench/peer_*.py) share: their command line, the
first-assignment clock, the guide's batched consume-and-commit loop and the
RESULT line that bench/harness.py parses.

Imported by the peers, which bench/harness.py runs as scripts (so this
folder is on sys.path). Standard library only at import time: confluent-kafka
is imported by the functions that need it, so the kafka-python peer does not
depend on it.
"""
import argparse
import sys
import time
from collections import defaultdict
from typing import Any, Callable

COMMIT_INTERVAL_SECONDS = 5
BATCH_SIZE = 500


def parser(doc: str, name: str, max_messages: int = 1_000_000,
           max_seconds: float = 0.0) -> argparse.ArgumentParser:
    """The options every peer takes (--bootstrap, --topic, --group,
    --max-messages, --max-seconds, --idle-seconds, --name) with this peer's
    defaults; the description is the first line of `doc`. A peer adds its own
    options, then calls parse_args()."""
    ap = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--max-messages", type=int, default=max_messages)
    ap.add_argument("--max-seconds", type=float, default=max_seconds,
                    help="stop after this long from the first assignment (0: no limit)")
    ap.add_argument("--idle-seconds", type=float, default=30.0,
                    help="give up after this long without a message (safety net)")
    ap.add_argument("--name", default=name)
    return ap


class FirstAssignment:
    """A confluent-kafka on_assign callback that only notes (time.monotonic())
    when the first partition assignment came: the peers measure from there,
    like `kc consume`. confluent-kafka assigns the partitions itself when the
    callback does not."""

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self, _consumer: Any, _partitions: Any) -> None:
        if self.at is None:
            self.at = time.monotonic()


def budget_spent(args: argparse.Namespace, assigned_at: float | None, now: float,
                 last_msg_at: float) -> str | None:
    """Why a peer stops now: "time-budget" once --max-seconds have passed since
    the first assignment, "idle" after --idle-seconds without a message, else
    None."""
    if args.max_seconds and assigned_at is not None and now - assigned_at >= args.max_seconds:
        return "time-budget"
    if now - last_msg_at >= args.idle_seconds:
        return "idle"
    return None


def report(name: str, consumed: int, assigned_at: float | None, end: float, commits: int,
           errors: int, stop_reason: str) -> None:
    """Prints the line bench/harness.py reads, on stdout:
    RESULT name=N messages=M seconds=S rate=R commits=C errors=E stop=WHY
    S runs from the first assignment to `end` (0 when there was none)."""
    seconds = end - (assigned_at if assigned_at is not None else end)
    rate = consumed / seconds if seconds > 0 else 0.0
    print(f"RESULT name={name} messages={consumed} seconds={seconds:.3f} rate={rate:.0f} "
          f"commits={commits} errors={errors} stop={stop_reason}", flush=True)


def consume_batched(args: argparse.Namespace, process: Callable[[Any], Any],
                    failures: type[BaseException] | tuple = ()) -> int:
    """The guide's "Offset Management" loop (seed/python-kafka-consumer-guide.txt)
    with confluent-kafka, kept as it is: poll(timeout=0.1), process(msg) per
    message, track the highest offset + 1 per (topic, partition), and commit
    those offsets synchronously every 500 messages or every 5 s. Added for a
    benchmark: stop after --max-messages (or --max-seconds from the first
    assignment, or --idle-seconds without a message), a last synchronous commit
    of what is pending, close(), and the RESULT line.

    An exception of a type in `failures` raised by process() counts as an
    error (the first five on stderr) and the message as not consumed; any other
    exception propagates. Returns the exit status: 1 when it gave up idle
    without a message, else 0."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }

    consumer = Consumer(conf)
    first_assignment = FirstAssignment()
    consumer.subscribe([args.topic], on_assign=first_assignment)

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
                process(msg)
                consumed += 1
            except failures as e:
                errors += 1
                if errors <= 5:
                    print(f"decode error at {msg.topic()}[{msg.partition()}]@{msg.offset()}: "
                          f"{type(e).__name__}: {e}", file=sys.stderr)

            # Track highest offset per (topic, partition)
            key = (msg.topic(), msg.partition())
            pending_offsets[key] = msg.offset() + 1  # +1 = next offset to consume
            batch_count += 1
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

        if spent := budget_spent(args, first_assignment.at, now, last_msg_at):
            stop_reason = spent
            break

    if pending_offsets:
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in pending_offsets.items()],
                        asynchronous=False)
        commits += 1
    end = time.monotonic()
    consumer.close()

    report(args.name, consumed, first_assignment.at, end, commits, errors, stop_reason)
    return 0 if stop_reason != "idle" or consumed > 0 else 1
