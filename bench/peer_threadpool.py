#!/usr/bin/env python3
"""Peer (6): the guide's "Async Processing Pattern": a ThreadPoolExecutor next to the poll loop.

The loop is the guide's snippet (seed/python-kafka-consumer-guide.txt, "Async
Processing Pattern") kept as it is: WORKERS = 8 threads; poll(timeout=0.01)
on the main thread; every message is submitted at once,
pool.submit(process_order_io, json.loads(msg.value())), with no bound on what
waits in the pool's queue; each pass of the loop scans all outstanding futures
for done ones and commits each done message on its own,
consumer.commit(message=original_msg, asynchronous=False), in the order the
scan finds them. The handler is the guide's process_order_io:
time.sleep(0.05) ("simulate DB write or HTTP call"), without its print().

--handler cpu swaps in a CPU-bound handler instead: a busy loop of --cpu-us
microseconds (time.perf_counter()), which the GIL serialises whatever the
number of workers.

Added for a benchmark:
- stop once --max-messages messages are processed and committed (or
  --max-seconds from the first assignment, or --idle-seconds without a
  message polled or completed), then cancel what still waits in the pool
  (the guide's `with` block would otherwise wait for every queued message),
  let the running ones finish, close();
- two counts of what the pattern does not guarantee:
  key_order_violations -- records that completed after a later record of the
  same key had completed (the value's "key" and "seq" fields, as
  `harness.py produce` writes them; the worker notes each completion);
  backward_commits -- commits of an offset lower than one committed before in
  the same partition, i.e. the earlier commit had gone past a record that was
  still being processed (a crash then would have lost it).

Prints two lines on stdout:
    RESULT name=N messages=M seconds=S rate=R commits=C errors=E stop=WHY
    EXTRA submitted=X key_order_violations=V backward_commits=B workers=W handler=H
S is from the first partition assignment to the last commit counted in M.
"""
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer

import peer_common


def main() -> int:
    ap = peer_common.parser(__doc__, "python-threadpool", max_messages=3200, max_seconds=60.0)
    ap.add_argument("--workers", type=int, default=8, help="the pool's max_workers (the guide: 8)")
    ap.add_argument("--handler", choices=("sleep", "cpu"), default="sleep",
                    help="sleep: the guide's time.sleep per message; cpu: a busy loop")
    ap.add_argument("--sleep-ms", type=float, default=50.0, help="--handler sleep: the sleep (the guide: 50)")
    ap.add_argument("--cpu-us", type=float, default=200.0, help="--handler cpu: the busy loop")
    args = ap.parse_args()

    WORKERS = args.workers
    sleep_s = args.sleep_ms / 1000.0
    cpu_s = args.cpu_us / 1e6

    # (key, seq) in completion order; list.append is atomic under the GIL.
    completions: list = []

    def process_order_io(data: dict):
        time.sleep(sleep_s)   # simulate DB write or HTTP call
        completions.append((data.get("key"), data.get("seq")))

    def process_order_cpu(data: dict):
        end = time.perf_counter() + cpu_s
        while time.perf_counter() < end:
            pass
        completions.append((data.get("key"), data.get("seq")))

    process = process_order_io if args.handler == "sleep" else process_order_cpu

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    first_assignment = peer_common.FirstAssignment()
    consumer.subscribe([args.topic], on_assign=first_assignment)

    futures_to_msg = {}
    committed = 0        # messages processed and committed
    submitted = 0
    errors = 0
    backward = 0
    high: dict = {}      # (topic, partition) -> highest offset committed
    last_activity = time.monotonic()
    stop_reason = "max-messages"
    end = None

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        while committed < args.max_messages:
            msg = consumer.poll(timeout=0.01)

            if msg and not msg.error():
                future = pool.submit(process, json.loads(msg.value()))
                futures_to_msg[future] = msg
                submitted += 1
                last_activity = time.monotonic()

            # Collect completed futures and commit
            done = [f for f in list(futures_to_msg) if f.done()]
            for future in done:
                original_msg = futures_to_msg.pop(future)
                try:
                    future.result()
                    consumer.commit(message=original_msg, asynchronous=False)
                    committed += 1
                    last_activity = time.monotonic()
                    tp = (original_msg.topic(), original_msg.partition())
                    if original_msg.offset() < high.get(tp, -1):
                        backward += 1
                    else:
                        high[tp] = original_msg.offset()
                except Exception as e:
                    errors += 1
                    if errors <= 5:
                        print(f"Processing failed: {e}", file=sys.stderr)
                if committed >= args.max_messages:
                    break

            now = time.monotonic()
            if spent := peer_common.budget_spent(args, first_assignment.at, now, last_activity):
                stop_reason = spent
                break
        end = time.monotonic()
        # Benchmark stop: drop what waits in the queue, let the running ones end.
        pool.shutdown(wait=True, cancel_futures=True)
    consumer.close()

    # Per-key order as the workers completed the records.
    last_seq: dict = {}
    violations = 0
    for key, seq in list(completions):
        if key is None or seq is None:
            continue
        if seq < last_seq.get(key, -1):
            violations += 1
        else:
            last_seq[key] = seq

    peer_common.report(args.name, committed, first_assignment.at, end, committed, errors, stop_reason)
    print(f"EXTRA submitted={submitted} key_order_violations={violations} backward_commits={backward} "
          f"workers={WORKERS} handler={args.handler}", flush=True)
    return 0 if stop_reason != "idle" or committed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
