#!/usr/bin/env python3
"""kc benchmark harness: runs the consumers one after another, measures them, prints the table.

Called by bench/run (which installs, builds, starts the broker and fills the
topic). Standard library only, except `count`, `count-output`, `topic`,
`produce` and `env`, which import the peer client libraries (the eos
scenario runs the first three as child processes).

  harness.py run   --bootstrap B --topic T --messages N --kc PATH
                   --rdkafka-performance PATH --python PY --out DIR [options]
                   [--scenario avro --registry URL]
                   [--scenario latency|cpu [--latency-ms MS --cpu-us US ...]]
  harness.py count --bootstrap B --topic T      (sum of high watermarks; needs confluent_kafka)
  harness.py count-output sqlite --path DB | postgres --uri URI --table T | kafka --bootstrap B --topic T
                   (rows and distinct records of an eos run's output: "<rows> <distinct>")
  harness.py topic create|delete --bootstrap B --topic T [--partitions P]   (the eos output topics)
  harness.py produce --bootstrap B --topic T --messages N --keys K [--seed S]
                   (the keyed records of the latency and cpu scenarios; needs confluent_kafka)
  harness.py verify --path JSONL --messages N --keys K [--seed S]
                   (per-key order and completeness of a kc jsonl sink file)
  harness.py env   [--rdkafka-performance PATH] [--scenario ...]
                   (machine and versions, one "key: value" a line)

Every consumer runs as a child process in a fresh consumer group. The harness
takes the wall-clock time from just before it starts the process to the
moment wait4() returns it, and the peak RSS from wait4()'s rusage
(ru_maxrss -- the figure `/usr/bin/time -v` prints as "Maximum resident set
size"), plus the user+system CPU time. Wall-clock msg/s = messages / wall
seconds is the primary figure for every consumer; the rate each tool reports
itself (measured from its first assignment or first message) is shown next
to it.

Scenarios (--scenario): json (the default) -- the topic holds JSON order
documents; kc validates them, the Python peers json.loads them. avro -- the
topic holds the same orders Avro-encoded in Confluent's wire format
(bench/order.avsc, registered in --registry); kc decodes them to JSON text
(--value-format avro), confluent-kafka's AvroDeserializer to Python dicts
(bench/peer_confluent_avro.py).

latency and cpu (parallel processing) -- the topic holds keyed JSON records
written by `harness.py produce`: K keys in a seeded random order, every key
exactly N/K times, each value carrying its key and its per-key sequence
number ({"key":"key-17","seq":3,...}, seq 0, 1, 2, ... per key in produce
order). latency: a handler that waits --latency-ms per record; the guide's
ThreadPoolExecutor pattern (bench/peer_threadpool.py) on a sample, kc
--ordering partition on a sample, kc --ordering key --max-in-flight M on the
whole topic with its jsonl output checked for per-key order. cpu: a busy
loop of --cpu-us per record; kc --concurrency 1 and 2 on the whole topic
(output checked the same way), and the guide's pattern with that busy loop
on a budget.

eos (exactly-once sinks) -- the topic holds the JSON orders; kc writes them
to SQLite, PostgreSQL (--postgres) and Kafka, at-least-once and with
--exactly-once, the same --eos-commit-every for both, each run into fresh
output that is counted afterwards (count-output) and then dropped; plus kc
into the null sink for reference. The PostgreSQL server's CPU (postmaster
and children, --postgres-pid) gets its own column.
"""
import argparse
import collections
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, asdict
from typing import Callable, Optional

# ----------------------------------------------------------------- parsing

RDPERF_RE = re.compile(
    r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms: (\d+) msgs/s")
KC_RE = re.compile(
    r"kc consume: (.+?) after (\d+) records in ([\d.]+) s \((\d+) msg/s\)")
KC_MALFORMED_RE = re.compile(r"\bmalformed (\d+)")
RESULT_RE = re.compile(r"^RESULT (.*)$", re.M)

SCENARIOS = ("json", "avro", "latency", "cpu", "eos")
KEYED_SEED = 5  # the latency and cpu scenarios' key order (harness.py produce)


@dataclass
class Parsed:
    messages: Optional[int] = None
    self_seconds: Optional[float] = None
    self_rate: Optional[float] = None
    detail: str = ""
    value_bytes: Optional[int] = None  # payload bytes consumed, when the tool says
    undecodable: int = 0               # records the tool counted but could not decode
    extra: dict = field(default_factory=dict)  # tool-specific figures (peer_threadpool.py's EXTRA line)


def parse_rdperf(out: str, err: str) -> Parsed:
    m = None
    for m in RDPERF_RE.finditer(out):
        pass  # the last summary line is the final one
    if not m:
        return Parsed(detail="no summary line")
    return Parsed(int(m.group(1)), int(m.group(3)) / 1000.0, float(m.group(4)),
                  "from first message", int(m.group(2)))


def parse_kc(out: str, err: str) -> Parsed:
    m = None
    for m in KC_RE.finditer(err):
        pass
    if not m:
        return Parsed(detail="no summary line")
    bad = KC_MALFORMED_RE.search(err, m.end())
    return Parsed(int(m.group(2)), float(m.group(3)), float(m.group(4)),
                  f"from first assignment; {m.group(1)}", undecodable=int(bad.group(1)) if bad else 0)


def parse_result(out: str, err: str) -> Parsed:
    m = None
    for m in RESULT_RE.finditer(out):
        pass
    if not m:
        return Parsed(detail="no RESULT line")
    kv = dict(x.split("=", 1) for x in m.group(1).split() if "=" in x)
    return Parsed(int(kv["messages"]), float(kv["seconds"]), float(kv.get("rate", 0)) or None,
                  f"from first assignment; stop={kv.get('stop', '?')} commits={kv.get('commits', '?')}")


EXTRA_RE = re.compile(r"^EXTRA (.*)$", re.M)


def parse_threadpool(out: str, err: str) -> Parsed:
    """peer_threadpool.py: its RESULT line plus the EXTRA line after it."""
    p = parse_result(out, err)
    m = None
    for m in EXTRA_RE.finditer(out):
        pass
    if m:
        p.extra = dict(x.split("=", 1) for x in m.group(1).split() if "=" in x)
        p.detail += (f"; submitted={p.extra.get('submitted', '?')}"
                     f" key_order_violations={p.extra.get('key_order_violations', '?')}"
                     f" backward_commits={p.extra.get('backward_commits', '?')}")
    return p


# ----------------------------------------------------------------- running

@dataclass
class Peer:
    key: str                 # short id, used in file names and --only
    label: str               # name in the table
    argv: Callable[[str], list]  # group -> command line
    parse: Callable[[str, str], Parsed]
    timeout: float           # hard limit for the process (seconds)
    full: bool = True        # expected to consume all messages (else: budget run)
    note: str = ""
    fast: bool = False       # a ~1 s run: repeated --fast-repeat times
    # checks the run's output once it exited: group -> (ok, one-line detail, counts)
    verify: Optional[Callable[[str], tuple]] = None
    prepare: Optional[Callable[[str], None]] = None  # group -> None, before the run (not timed)
    cleanup: Optional[Callable[[str], None]] = None  # group -> None, after verify (not timed)


@dataclass
class Run:
    key: str
    label: str
    rep: int
    group: str
    argv: list
    rc: int = 0
    timed_out: bool = False
    wall: float = 0.0
    maxrss_kib: int = 0
    cpu: float = 0.0
    broker_cpu: float = 0.0  # CPU the broker used during the run
    sink_cpu: float = 0.0    # CPU the PostgreSQL server used during the run (eos scenario)
    other_cpu: float = 0.0   # CPU the rest of the machine used (not us, not the broker, not PostgreSQL)
    messages: Optional[int] = None
    self_seconds: Optional[float] = None
    self_rate: Optional[float] = None
    detail: str = ""
    value_bytes: Optional[int] = None
    extra: dict = field(default_factory=dict)
    verified: Optional[bool] = None  # peer.verify's verdict (None: no check)
    verify_detail: str = ""
    ok: bool = True
    problem: str = ""
    log_out: str = ""
    log_err: str = ""

    @property
    def wall_rate(self) -> float:
        return (self.messages or 0) / self.wall if self.wall > 0 else 0.0


_TICK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / _TICK


def process_cpu(pid: int) -> float:
    """utime + stime of a process in seconds (0 if it is gone)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def server_cpu(pid: int) -> float:
    """CPU seconds of a server process and its children, exited ones
    included: its own utime + stime, the cutime + cstime of the children it
    has reaped, and utime + stime of those still there (PostgreSQL: the
    postmaster, its background processes and one backend per connection,
    which exits when kc disconnects). 0 without a pid."""
    if not pid:
        return 0.0
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])
    except (OSError, IndexError, ValueError):
        return 0.0
    return total / _TICK


def measure(argv: list, out_path: str, err_path: str, timeout: float) -> tuple:
    """Run argv; return (rc, timed_out, wall seconds, maxrss KiB, cpu seconds)."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             start_new_session=True)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    return
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline:
                    if p.returncode is not None:
                        return
                    time.sleep(0.1)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            t1 = time.monotonic()
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, timed_out.is_set(), t1 - t0, ru.ru_maxrss, ru.ru_utime + ru.ru_stime


def make_peers(a, all_peers: bool = False) -> list:
    if a.scenario in ("latency", "cpu"):
        return select_peers(a, make_parallel_peers(a), all_peers)
    if a.scenario == "eos":
        return select_peers(a, make_eos_peers(a), all_peers)
    n = a.messages
    here = os.path.dirname(os.path.abspath(__file__))
    py = a.python
    common = lambda g: ["--bootstrap", a.bootstrap, "--topic", a.topic, "--group", g]  # noqa: E731
    kc = lambda fmt, *extra: (lambda g: [a.kc, "consume", "-b", a.bootstrap, "-g", g, "-t", a.topic,  # noqa: E731
                                         "--from-beginning", "--value-format", fmt, "--sink", "null",
                                         "--max-messages", str(n), *extra])
    raw = raw_peer(a)
    if a.scenario == "avro":
        peers = [
            raw,
            Peer("kc-avro", "kc consume --value-format avro",
                 kc("avro", "--schema-registry", a.registry), parse_kc, a.full_timeout,
                 note="Avro binary to JSON text for every value (writer schema fetched once by id), "
                      "at-least-once commits", fast=True),
        ]
        if a.diagnostics:
            peers.append(Peer("kc-raw", "kc consume --value-format raw (diagnostic)", kc("raw"), parse_kc,
                              a.full_timeout, note="no decoding", fast=True))
        peers.append(Peer("confluent-avro", "confluent-kafka AvroDeserializer, guide batched loop",
                          lambda g: [py, os.path.join(here, "peer_confluent_avro.py"), *common(g),
                                     "--registry", a.registry, "--max-messages", str(n)],
                          parse_result, a.full_timeout,
                          note="AvroDeserializer (fastavro) to Python dicts, sync commit every 500 / 5 s"))
        return select_peers(a, peers, all_peers)
    peers = [
        raw,
        Peer("kc", "kc consume --value-format json", kc("json"), parse_kc, a.full_timeout,
             note="simdjson validation, at-least-once commits", fast=True),
    ]
    if a.diagnostics:
        peers.append(Peer("kc-raw", "kc consume --value-format raw (diagnostic)", kc("raw"), parse_kc,
                          a.full_timeout, note="no JSON validation", fast=True))
        peers.append(Peer("kc-commit50k", "kc consume json --commit-every 50000 (diagnostic)",
                          kc("json", "--commit-every", "50000"), parse_kc, a.full_timeout,
                          note="JSON as above, 20 commits per 1M instead of ~2,000", fast=True))
    peers += [
        Peer("confluent", "confluent-kafka, guide batched loop",
             lambda g: [py, os.path.join(here, "peer_confluent_batched.py"), *common(g),
                        "--max-messages", str(n)],
             parse_result, a.full_timeout,
             note="json.loads, sync commit every 500 / 5 s"),
        Peer("confluent-per-msg", "confluent-kafka, guide commit per message *",
             lambda g: [py, os.path.join(here, "peer_confluent_per_message.py"), *common(g),
                        "--max-messages", str(min(n, a.per_message_max)),
                        "--max-seconds", str(a.per_message_seconds)],
             parse_result, a.per_message_seconds + 90, full=False,
             note=f"budget: {a.per_message_seconds:g} s or {min(n, a.per_message_max):,} messages"),
        Peer("kafka-python", "kafka-python, commit every 500",
             lambda g: [py, os.path.join(here, "peer_kafka_python.py"), *common(g),
                        "--max-messages", str(n), "--max-seconds", str(a.kafka_python_seconds)],
             parse_result, a.kafka_python_seconds + 90, full=False,
             note=f"budget: {n:,} messages or {a.kafka_python_seconds:g} s"),
    ]
    return select_peers(a, peers, all_peers)


def raw_peer(a) -> Peer:
    return Peer("raw", "rdkafka_performance (raw librdkafka)",
                lambda g: [a.rdkafka_performance, "-C", "-G", g, "-t", a.topic, "-c", str(a.messages),
                           "-b", a.bootstrap, "-q"],
                parse_rdperf, a.full_timeout,
                note="high-level consumer, no decoding, auto-commit, queued.min.messages=1000000",
                fast=True)


def make_parallel_peers(a) -> list:
    """The latency and cpu scenarios' consumers (issue 5, parallel processing)."""
    n = a.messages
    here = os.path.dirname(os.path.abspath(__file__))
    py = a.python

    def kc(count, *extra, jsonl=False):
        def argv(g):
            sink = f"jsonl:{sink_path(a, g)}" if jsonl else "null"
            return [a.kc, "consume", "-b", a.bootstrap, "-g", g, "-t", a.topic, "--from-beginning",
                    "--value-format", "json", "--sink", sink, "--max-messages", str(count), *extra]
        return argv

    def verify(g):
        return verify_jsonl(sink_path(a, g), n, a.keys, a.seed)

    def complete(g):
        # a control: it should lose or repeat nothing; its order is what it tells
        _, detail, c = verify_jsonl(sink_path(a, g), n, a.keys, a.seed)
        return c["complete"], detail, c

    def threadpool(count, seconds, *extra):
        return lambda g: [py, os.path.join(here, "peer_threadpool.py"), "--bootstrap", a.bootstrap,
                          "--topic", a.topic, "--group", g, "--max-messages", str(count),
                          "--max-seconds", str(seconds), "--workers", str(a.threadpool_workers), *extra]

    if a.scenario == "latency":
        ms, inflight = a.latency_ms, a.max_in_flight
        tp_n, part_n = min(n, a.threadpool_messages), min(n, a.partition_messages)
        peers = [
            Peer("python-threadpool", f"Python ThreadPoolExecutor, {a.threadpool_workers} workers (guide) *",
                 threadpool(tp_n, a.threadpool_seconds, "--handler", "sleep", "--sleep-ms", f"{ms:g}"),
                 parse_threadpool, a.threadpool_seconds + 90, full=False,
                 note=f"the guide's pattern: poll(0.01), submit every message, sync commit per completed "
                      f"message; time.sleep({ms / 1000:g}); sample: the first {tp_n:,} processed "
                      f"(or {a.threadpool_seconds:g} s)"),
            Peer("kc-partition", f"kc --ordering partition --simulate-latency-ms {ms:g} *",
                 kc(part_n, "--ordering", "partition", "--simulate-latency-ms", f"{ms:g}"),
                 parse_kc, part_n * ms / 1000 * 3 + 90, full=False,
                 note=f"one record in flight per partition ({a.partitions} partition(s)); sample: "
                      f"--max-messages {part_n:,}"),
            Peer("kc-key", f"kc --ordering key --max-in-flight {inflight} --simulate-latency-ms {ms:g}",
                 kc(n, "--ordering", "key", "--max-in-flight", str(inflight), "--simulate-latency-ms", f"{ms:g}",
                    jsonl=True),
                 parse_kc, a.full_timeout, fast=True, verify=verify,
                 note=f"up to {inflight:,} in flight, one per key; the whole topic, written to a jsonl "
                      f"sink and checked for per-key order"),
        ]
        if a.diagnostics:
            peers.append(Peer("kc-unordered",
                              f"kc --ordering unordered --max-in-flight {inflight} (diagnostic)",
                              kc(n, "--ordering", "unordered", "--max-in-flight", str(inflight),
                                 "--simulate-latency-ms", f"{ms:g}"),
                              parse_kc, a.full_timeout, fast=True,
                              note=f"up to {inflight:,} in flight, no key constraint: the ceiling for kc-key"))
        if a.order_checks:
            # Whether the jsonl check can see reordering at all: the file
            # shows the order kc writes records in, which is completion order
            # only where kc writes after the (simulated) work. Random latency
            # (base + 0..base) makes records of one key overtake each other
            # unless kc holds them back; --ordering unordered is the control.
            cw, cms = a.check_workers, a.check_latency_ms
            jit = ("--simulate-latency-ms", f"{cms:g}", "--simulate-latency-jitter-ms", f"{cms:g}")
            peers += [
                Peer("order-key-workers", f"check: kc --ordering key --concurrency {cw}, {cms:g}+0..{cms:g} ms",
                     kc(n, "--ordering", "key", "--concurrency", str(cw), "--max-in-flight", str(inflight),
                        *jit, jsonl=True),
                     parse_kc, a.full_timeout, verify=verify,
                     note="order check, worker form (kc writes each record after its sleep: completion "
                          "order); must be in order per key"),
                Peer("order-control-workers",
                     f"control: kc --ordering unordered --concurrency {cw}, {cms:g}+0..{cms:g} ms",
                     kc(n, "--ordering", "unordered", "--concurrency", str(cw), "--max-in-flight", str(inflight),
                        *jit, jsonl=True),
                     parse_kc, a.full_timeout, verify=complete,
                     note="the same without key order: should show records out of order (the check works)"),
                Peer("order-control-async",
                     f"control: kc --ordering unordered (async), {ms:g}+0..{ms:g} ms",
                     kc(n, "--ordering", "unordered", "--max-in-flight", str(inflight),
                        "--simulate-latency-ms", f"{ms:g}", "--simulate-latency-jitter-ms", f"{ms:g}", jsonl=True),
                     parse_kc, a.full_timeout, verify=complete,
                     note="kc-key's form without key order: out of order records here mean kc-key's file "
                          "shows completion order; none mean it shows start order"),
            ]
        return peers
    us = a.cpu_us
    peers = [
        Peer("kc-cpu1", f"kc --ordering {a.cpu_ordering} --concurrency 1 --simulate-cpu-us {us:g}",
             kc(n, "--ordering", a.cpu_ordering, "--concurrency", "1", "--simulate-cpu-us", f"{us:g}", jsonl=True),
             parse_kc, a.full_timeout, verify=verify,
             note=f"one worker thread busy {us:g} us per record; jsonl sink checked for per-key order"),
        Peer("kc-cpu2", f"kc --ordering {a.cpu_ordering} --concurrency 2 --simulate-cpu-us {us:g}",
             kc(n, "--ordering", a.cpu_ordering, "--concurrency", "2", "--simulate-cpu-us", f"{us:g}", jsonl=True),
             parse_kc, a.full_timeout, verify=verify,
             note="two worker threads, as above"),
    ]
    if a.diagnostics:
        peers.append(Peer("kc-cpu-poll", f"kc --simulate-cpu-us {us:g}, no workers (diagnostic)",
                          kc(n, "--simulate-cpu-us", f"{us:g}"), parse_kc, a.full_timeout,
                          note="the busy loop on the poll thread (no --concurrency)"))
    peers.append(Peer("python-threadpool-cpu",
                      f"Python ThreadPoolExecutor, {a.threadpool_workers} workers, busy loop *",
                      threadpool(n, a.threadpool_seconds, "--handler", "cpu", "--cpu-us", f"{us:g}"),
                      parse_threadpool, a.threadpool_seconds + 90, full=False,
                      note=f"the guide's pattern with a {us:g} us busy loop (the GIL serialises it); "
                           f"budget: {n:,} messages or {a.threadpool_seconds:g} s"))
    return peers


# ----------------------------------------------------------------- eos

EOS_SINKS = ("sqlite", "postgres", "kafka")
KC_COMMITS_RE = re.compile(r"commits ok (\d+), commits failed (\d+)(?:, transactions (\d+), aborted (\d+))?")


def parse_kc_eos(out: str, err: str) -> Parsed:
    """parse_kc plus the summary's commit and transaction counts (extra)."""
    p = parse_kc(out, err)
    m = None
    for m in KC_COMMITS_RE.finditer(err):
        pass
    if m:
        p.extra = {"commits_ok": int(m.group(1)), "commits_failed": int(m.group(2))}
        p.detail += f"; commits ok {m.group(1)}, failed {m.group(2)}"
        if m.group(3) is not None:
            p.extra.update(transactions=int(m.group(3)), aborted=int(m.group(4)))
            p.detail += f"; transactions {m.group(3)}, aborted {m.group(4)}"
    return p


def make_eos_peers(a) -> list:
    """The eos scenario's consumers (issue 6): kc into each transactional sink,
    at-least-once and exactly-once, the same commit policy for both, each run
    into fresh output (its own SQLite file, PostgreSQL table, Kafka topic)
    that is counted after the run; plus kc into the null sink for reference.

    Every sink run stops at --max-messages N (the final commit or transaction
    included); --idle-exit-ms 3000 is the safety net should fewer arrive. The
    idle wait alone would add 3 s of nothing to every wall time."""
    n = a.messages
    every = str(a.eos_commit_every)

    def kc(sink, *extra):
        def argv(g):
            return [a.kc, "consume", "-b", a.bootstrap, "-g", g, "-t", a.topic, "--from-beginning",
                    "--value-format", "json", "--idle-exit-ms", "3000", "--max-messages", str(n),
                    "--commit-every", every, "--sink", *sink(g), *extra]
        return argv

    def check(counter, exactly_once):
        # In a child process: counting a million distinct values grows the
        # harness by ~200 MiB, and every process it starts afterwards
        # inherits that peak (ru_maxrss survives fork and exec).
        def verify(g):
            argv = [sys.executable, os.path.abspath(__file__), "count-output", *counter(g)]
            r = subprocess.run(argv, capture_output=True, text=True)
            try:
                rows, distinct = (int(x) for x in r.stdout.split())
            except ValueError:
                why = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
                return False, f"could not count the output: {why}", {"rows": 0, "distinct": 0, "duplicates": 0}
            return sink_verdict(rows, distinct, n, exactly_once)
        return verify

    sqlite_path = lambda g: os.path.join(a.out, f"{g}.db")  # noqa: E731
    pg_table = lambda g: g.replace("-", "_")  # noqa: E731
    out_topic = lambda g: f"{g}-out"  # noqa: E731

    def drop_sqlite(g):
        if not a.keep_sinks:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(sqlite_path(g) + suffix)
                except FileNotFoundError:
                    pass

    def drop_pg(g):
        if not a.keep_sinks:
            psql(a.postgres, f'DROP TABLE IF EXISTS "{pg_table(g)}"')

    def drop_topic(g):
        if not a.keep_sinks:
            topic_admin(a, "delete", out_topic(g))

    sinks = {
        "sqlite": dict(sink=lambda g: [f"sqlite:{sqlite_path(g)}"],
                       count=lambda g: ["sqlite", "--path", sqlite_path(g)], cleanup=drop_sqlite,
                       what="a fresh SQLite file per run (WAL, synchronous=NORMAL)"),
        "postgres": dict(sink=lambda g: [f"postgres:{a.postgres}", "--sink-table", pg_table(g)],
                         count=lambda g: ["postgres", "--uri", a.postgres, "--table", pg_table(g)],
                         cleanup=drop_pg,
                         what="a fresh table per run (--sink-table) in the bench's own PostgreSQL"),
        "kafka": dict(sink=lambda g: [f"kafka:{out_topic(g)}"],
                      count=lambda g: ["kafka", "--bootstrap", a.bootstrap, "--topic", out_topic(g)],
                      cleanup=drop_topic,
                      prepare=lambda g: topic_admin(a, "create", out_topic(g)),
                      what=f"a fresh {a.partitions}-partition output topic per run, read back with "
                           "isolation.level=read_committed"),
    }
    peers = [Peer("kc", "kc consume --value-format json --sink null (reference)",
                  lambda g: [a.kc, "consume", "-b", a.bootstrap, "-g", g, "-t", a.topic, "--from-beginning",
                             "--value-format", "json", "--sink", "null", "--max-messages", str(n),
                             "--commit-every", every],
                  parse_kc_eos, a.full_timeout, fast=True,
                  note="the json scenario's plain kc run: no output, at-least-once commits")]
    for name in EOS_SINKS:
        s = sinks[name]
        for mode, eos in (("alo", False), ("eos", True)):
            extra = ("--exactly-once",) if eos else ()
            label = f"kc --sink {name} " + ("--exactly-once" if eos else "(at-least-once)")
            note = (f"{s['what']}; " + (f"output and offsets in one transaction per {every} records "
                                        "(or 5 s); output checked: every record exactly once"
                                        if eos else
                                        f"offsets committed to Kafka every {every} records (or 5 s) after "
                                        "the sink's flush; output checked: every record at least once, "
                                        "duplicates counted"))
            peers.append(Peer(f"{name}-{mode}", label, kc(s["sink"], *extra), parse_kc_eos, a.eos_timeout,
                              note=note, verify=check(s["count"], eos), prepare=s.get("prepare"),
                              cleanup=s["cleanup"]))
    return peers


def eos_warmers(a) -> list:
    """Unmeasured passes of the eos scenario: rdkafka_performance, kc into
    null, and a short exactly-once run into Kafka. The first transactional
    producer on a fresh broker has the broker create __transaction_state,
    which should not land in the first measured kafka-eos run."""
    n = min(a.messages, 20_000)
    out_topic = lambda g: f"{g}-out"  # noqa: E731
    kc_null = [p for p in make_eos_peers(a) if p.key == "kc"]
    txn = Peer("kafka-eos", "kc --sink kafka --exactly-once (warm-up, 20,000 records)",
               lambda g: [a.kc, "consume", "-b", a.bootstrap, "-g", g, "-t", a.topic, "--from-beginning",
                          "--value-format", "json", "--idle-exit-ms", "3000", "--max-messages", str(n),
                          "--sink", f"kafka:{out_topic(g)}", "--exactly-once"],
               parse_kc_eos, a.eos_timeout, full=False,
               prepare=lambda g: topic_admin(a, "create", out_topic(g)),
               cleanup=lambda g: topic_admin(a, "delete", out_topic(g)))
    return [raw_peer(a), *kc_null, txn]


def sink_verdict(rows: int, distinct: int, messages: int, exactly_once: bool) -> tuple:
    """(ok, detail, counts) of a sink's output: exactly-once must hold every
    record exactly once; at-least-once every record, duplicates allowed (and
    counted)."""
    dups, missing = rows - distinct, max(0, messages - distinct)
    ok = (rows == messages and distinct == messages) if exactly_once else distinct == messages
    detail = (f"{rows:,} rows, {distinct:,} distinct records of {messages:,}: "
              f"missing {missing:,}, duplicates {dups:,}")
    return ok, detail, {"rows": rows, "distinct": distinct, "duplicates": dups, "missing": missing}


def count_sqlite(path: str, table: str = "kc_records") -> tuple:
    """(rows, distinct (partition, offset)) of a kc SQLite sink file."""
    import sqlite3
    if not os.path.exists(path):
        raise RuntimeError(f"{path} does not exist")
    con = sqlite3.connect(path)
    try:
        sql = f'SELECT count(*), count(DISTINCT "partition" || \':\' || "offset") FROM "{table}"'
        return con.execute(sql).fetchone()
    finally:
        con.close()


def psql(uri: str, sql: str) -> str:
    r = subprocess.run(["psql", uri, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"psql: {r.stderr.strip() or r.returncode}")
    return r.stdout.strip()


def count_postgres(uri: str, table: str) -> tuple:
    """(rows, distinct (partition, offset)) of a kc PostgreSQL sink table."""
    rows, distinct = psql(uri, f'SELECT count(*), count(DISTINCT ("partition", "offset")) FROM "{table}"').split("|")
    return int(rows), int(distinct)


def topic_admin(a, op: str, topic: str) -> None:
    """Creates (a.partitions partitions) or deletes a topic, in a child
    process like the counts: the harness stays small (see make_eos_peers)."""
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "topic", op, "--bootstrap", a.bootstrap,
                        "--topic", topic, "--partitions", str(a.partitions)], capture_output=True, text=True)
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        if op == "create":
            raise RuntimeError(f"creating topic {topic}: {why}")
        print(f"bench: warning: deleting topic {topic}: {why}", file=sys.stderr)


def cmd_topic(a) -> int:
    if a.op == "create":
        create_topic(a.bootstrap, a.topic, a.partitions)
    else:
        delete_topic(a.bootstrap, a.topic)
    return 0


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30).values():
        f.result(60)
    # the metadata of a new topic reaches the broker's cache a moment later
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        t = admin.list_topics(topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} did not appear with {partitions} partitions")


def delete_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.delete_topics([topic], operation_timeout=30).values():
        f.result(60)


def count_topic(bootstrap: str, topic: str) -> tuple:
    """(records, distinct values) of a topic as a read_committed consumer sees
    it: records of aborted transactions and transaction markers not counted.
    The values are kc produce's JSON orders, each with its own order_id."""
    import hashlib
    from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"kc-bench-count-{topic}",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True})
    try:
        md = c.list_topics(topic, timeout=30).topics[topic]
        if md.error is not None:
            raise RuntimeError(f"topic {topic}: {md.error}")
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        left, rows, seen = set(md.partitions), 0, set()
        deadline = time.monotonic() + 600
        while left:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no end of partitions {sorted(left)} in 600 s")
            for m in c.consume(10_000, 1.0):
                e = m.error()
                if e is None:
                    rows += 1
                    seen.add(hashlib.blake2b(m.value() or b"", digest_size=16).digest())
                elif e.code() == KafkaError._PARTITION_EOF:
                    left.discard(m.partition())
                else:
                    raise RuntimeError(str(e))
        return rows, len(seen)
    finally:
        c.close()


def cmd_count_output(a) -> int:
    """Prints "<rows> <distinct>" of a sink's output (make_eos_peers' check)."""
    if a.kind == "sqlite":
        rows, distinct = count_sqlite(a.path)
    elif a.kind == "postgres":
        rows, distinct = count_postgres(a.uri, a.table)
    else:
        rows, distinct = count_topic(a.bootstrap, a.topic)
    print(rows, distinct)
    return 0


def eos_summary(a, runs: dict, rate, ratio) -> list:
    """The last lines of the eos scenario: what each sink holds, the
    transactions, the ratios (wall msg/s of the median runs) and the target."""
    out = []
    for key in (f"{s}-{m}" for s in EOS_SINKS for m in ("alo", "eos")):
        rs = runs.get(key)
        if not rs:
            continue
        good = sum(1 for r in rs if r.verified)
        dups = [r.extra.get("duplicates", 0) for r in rs]
        r = median_run(rs)
        e = r.extra
        line = (f"output {key}: {good} of {len(rs)} run(s) passed, duplicates per run "
                f"{', '.join(f'{d:,}' for d in dups)}; median run: {r.verify_detail}")
        if "commits_ok" in e:
            line += f"; commits ok {e['commits_ok']:,}, failed {e['commits_failed']:,}"
        if "transactions" in e:
            line += f", transactions {e['transactions']:,}, aborted {e['aborted']:,}"
        out.append(line)
    def shown(key):
        x = rate(key)
        return f"{x:,.0f}" if x else "-"

    ref = rate("kc")
    out.append(f"wall msg/s, at-least-once / exactly-once: "
               + ", ".join(f"{s} {shown(s + '-alo')} / {shown(s + '-eos')}" for s in EOS_SINKS)
               + (f"; reference kc --sink null {ref:,.0f}" if ref else ""))
    out.append("self-reported (from first assignment) ratios, for reference: "
               + ", ".join(f"{s}-eos/{s}-alo {ratio(rate(s + '-eos', True), rate(s + '-alo', True))}"
                           for s in EOS_SINKS))
    for s in EOS_SINKS:
        out.append(f"ratio {s}-eos/{s}-alo: {ratio(rate(s + '-eos'), rate(s + '-alo'))}")
    eos, alo = rate("sqlite-eos"), rate("sqlite-alo")
    clean = bool(runs.get("sqlite-eos")) and all(r.verified for r in runs["sqlite-eos"])
    met = bool(eos and alo and clean and eos >= 0.5 * alo)
    why = (f"ratio {eos / alo:.2f}" if eos and alo else "no complete pair of runs") + \
        f", sqlite-eos output exactly once in every run: {'yes' if clean else 'no'}"
    out.append(f"target sqlite-eos >= 50% of sqlite-alo: {'yes' if met else 'no'} ({why})")
    return out


def sink_path(a, group: str) -> str:
    return os.path.join(a.out, f"{group}.jsonl")


def select_peers(a, peers: list, all_peers: bool) -> list:
    """The peers --only names (all of them without --only, or with all_peers)."""
    if a.only and not all_peers:
        want = set(a.only.split(","))
        unknown = want - {p.key for p in peers}
        if unknown:
            sys.exit(f"harness: unknown --only names: {','.join(sorted(unknown))} "
                     f"(known: {','.join(p.key for p in peers)})")
        peers = [p for p in peers if p.key in want]
    return peers


def run_one(a, peer: Peer, rep: int, prefix: str = "") -> Run:
    key = prefix or peer.key
    group = f"kc-bench-{key}-{a.run_id}-r{rep}"
    argv = peer.argv(group)
    base = os.path.join(a.out, f"{key}.r{rep}")
    r = Run(peer.key, peer.label, rep, group, argv, log_out=base + ".out", log_err=base + ".err")
    if peer.prepare is not None:
        peer.prepare(group)
    print(f"bench: [{rep}/{getattr(a, 'total_reps', a.repeat)}] {peer.label}: {' '.join(argv)}", file=sys.stderr, flush=True)
    pg_pid = getattr(a, "postgres_pid", 0)
    busy0, broker0, sink0 = machine_busy(), process_cpu(a.broker_pid), server_cpu(pg_pid)
    r.rc, r.timed_out, r.wall, r.maxrss_kib, r.cpu = measure(argv, r.log_out, r.log_err, peer.timeout)
    busy1, broker1, sink1 = machine_busy(), process_cpu(a.broker_pid), server_cpu(pg_pid)
    r.broker_cpu = max(0.0, broker1 - broker0)
    r.sink_cpu = max(0.0, sink1 - sink0)
    # the harness itself sleeps in wait4(); what is left is other load on the machine
    r.other_cpu = max(0.0, (busy1 - busy0) - r.cpu - r.broker_cpu - r.sink_cpu)
    with open(r.log_out, errors="replace") as f:
        out = f.read()
    with open(r.log_err, errors="replace") as f:
        err = f.read()
    p = peer.parse(out, err)
    r.messages, r.self_seconds, r.self_rate, r.detail = p.messages, p.self_seconds, p.self_rate, p.detail
    r.value_bytes = p.value_bytes
    r.extra = p.extra
    problems = []
    if peer.verify is not None:
        r.verified, r.verify_detail, counts = peer.verify(group)
        r.extra.update(counts)
        print(f"bench:   output check: {r.verify_detail}", file=sys.stderr, flush=True)
        if not r.verified:
            problems.append(f"output check failed: {r.verify_detail}")
    if peer.cleanup is not None:
        peer.cleanup(group)
    if r.timed_out:
        problems.append(f"killed after {peer.timeout:g} s")
    if r.rc != 0:
        problems.append(f"exit code {r.rc}")
    if r.messages is None:
        problems.append(p.detail)
    elif peer.full and r.messages != a.messages:
        problems.append(f"consumed {r.messages} of {a.messages}")
    if p.undecodable:
        # kc counts a record it could not decode as done (written with its raw
        # bytes): a fast run of undecoded records must not pass as a result
        problems.append(f"{p.undecodable} records did not decode")
    if problems:
        r.ok = False
        r.problem = "; ".join(problems)
        tail = err.strip().splitlines()[-5:] + out.strip().splitlines()[-3:]
        print(f"bench:   PROBLEM: {r.problem} (logs {r.log_out}, {r.log_err})", file=sys.stderr)
        for line in tail:
            print(f"bench:   | {line}", file=sys.stderr)
    print(f"bench:   {r.messages or 0:,} msgs in {r.wall:.2f} s wall = {r.wall_rate:,.0f} msg/s"
          + (f"; self-reported {r.self_rate:,.0f} msg/s" if r.self_rate else "")
          + f"; peak RSS {r.maxrss_kib / 1024:.1f} MiB; cpu {r.cpu:.2f} s"
          + f" (broker {r.broker_cpu:.2f} s, "
          + (f"PostgreSQL {r.sink_cpu:.2f} s, " if pg_pid else "")
          + f"other processes {r.other_cpu:.2f} s)", file=sys.stderr, flush=True)
    return r


def median_run(runs: list) -> Run:
    """The run whose wall-clock rate is the median (lower middle for an even count)."""
    s = sorted(runs, key=lambda r: r.wall_rate)
    return s[(len(s) - 1) // 2]


def fmt_table(a, peers: list, runs: dict) -> list:
    lines = []
    pg = bool(getattr(a, "postgres_pid", 0))
    hdr = ("name", "runs", "messages", "wall s", "wall msg/s", "self msg/s", "peak RSS MiB", "CPU s",
           "broker CPU s") + (("PostgreSQL CPU s",) if pg else ()) + ("other CPU s",)
    rows = []
    for p in peers:
        rs = runs.get(p.key) or []
        if not rs:
            continue
        r = median_run(rs)
        rows.append((p.label + ("" if r.ok else " (!)"), str(len(rs)),
                     f"{r.messages or 0:,}", f"{r.wall:.2f}", f"{r.wall_rate:,.0f}",
                     f"{r.self_rate:,.0f}" if r.self_rate else "-",
                     f"{r.maxrss_kib / 1024:.1f}", f"{r.cpu:.2f}", f"{r.broker_cpu:.2f}")
                    + ((f"{r.sink_cpu:.2f}",) if pg else ()) + (f"{r.other_cpu:.2f}",))
    widths = [max(len(hdr[i]), *(len(row[i]) for row in rows)) for i in range(len(hdr))]
    def line(cells):
        return "| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                 for i, c in enumerate(cells)) + " |"
    lines.append(line(hdr))
    lines.append("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                                for i, w in enumerate(widths)) + "|")
    lines += [line(row) for row in rows]
    return lines


def cmd_run(a) -> int:
    os.makedirs(a.out, exist_ok=True)
    a.run_id = a.run_id or time.strftime("%Y%m%d%H%M%S")
    peers = make_peers(a)
    avro = a.scenario == "avro"
    parallel = a.scenario in ("latency", "cpu")
    eos = a.scenario == "eos"
    kc_key, peer_key = ("kc-avro", "confluent-avro") if avro else ("kc", "confluent")
    runs: dict = {}
    warm_runs: list = []
    if a.warmup:
        # Unmeasured passes over the topic first: the data was just written,
        # and the broker's JIT and caches should be as warm for the first
        # measured consumer as for the last. Both rdkafka_performance and kc:
        # kc's commits exercise the broker's OffsetCommit path, which
        # rdkafka_performance (auto-commit) barely touches. (latency, cpu:
        # rdkafka_performance only; the measured runs last seconds, not
        # fractions of one, and commit at a few thousand records/s at most.)
        warmers = ([raw_peer(a)] if parallel else eos_warmers(a) if eos else
                   [p for p in make_peers(a, all_peers=True) if p.key in ("raw", kc_key)])
        for warm in warmers:
            print(f"bench: warm-up pass with {warm.key} (not measured)", file=sys.stderr, flush=True)
            w = run_one(a, warm, 0, prefix=f"warmup-{warm.key}")
            warm_runs.append(w)
            if not w.ok:
                print("bench: warning: the warm-up pass failed", file=sys.stderr)
    a.total_reps = max(a.repeat, a.fast_repeat)
    for rep in range(1, a.total_reps + 1):
        for peer in (eos_order(peers, rep) if eos else peers):
            if rep > a.repeat and not peer.fast:
                continue
            if a.settle > 0:
                time.sleep(a.settle)
            runs.setdefault(peer.key, []).append(run_one(a, peer, rep))

    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({k: [dict(asdict(r), wall_rate=r.wall_rate) for r in v] for k, v in runs.items()},
                  f, indent=1)

    out = []
    out.append("")
    if avro:
        # payload bytes per record as rdkafka_performance counted them (any
        # of its runs, warm-up included): the Avro body plus the 5-byte
        # Confluent header
        sized = [r for rs in runs.values() for r in rs if r.value_bytes and r.messages]
        sized += [w for w in warm_runs if w.value_bytes and w.messages]
        avg = f"{sized[0].value_bytes / sized[0].messages:.0f}" if sized else "?"
        what = f"Avro order messages ({avg} bytes avg)"
    elif a.scenario == "latency":
        what = (f"keyed JSON records ({a.keys:,} keys), handler waits {a.latency_ms:g} ms per record "
                "(I/O-bound)")
    elif a.scenario == "cpu":
        what = f"keyed JSON records ({a.keys:,} keys), handler busy {a.cpu_us:g} us per record (CPU-bound)"
    elif eos:
        what = (f"JSON order messages into transactional sinks, at-least-once and exactly-once, "
                f"--commit-every {a.eos_commit_every}")
    else:
        what = "JSON order messages"
    out.append(f"kc benchmark: {a.messages:,} {what}, topic {a.topic} "
               f"({a.partitions} partition{'' if a.partitions == 1 else 's'}), broker {a.bootstrap}, "
               f"each row: the median run by wall msg/s")
    warmed = "an unmeasured warm-up pass over the topic (rdkafka_performance)" if parallel else \
        f"two unmeasured warm-up passes over the topic (rdkafka_performance, {kc_key})"
    if eos:
        warmed = ("unmeasured warm-up passes (rdkafka_performance, kc --sink null, "
                  "20,000 records kc --sink kafka --exactly-once)")
    out.append((f"after {warmed}; " if a.warmup else "")
               + f"each consumer in a fresh group, one after another, {a.settle:g} s apart")
    out.append("wall = process start to exit (primary figure); self = the tool's own figure "
               "(kc and the Python peers: from first assignment; rdkafka_performance: from first message)")
    out.append("")
    out += fmt_table(a, peers, runs)
    out.append("")
    budget = [p for p in peers if not p.full]
    for p in peers:
        out.append(f"  {p.label}: {p.note}")
    if budget:
        out.append("  * budget runs stop early; their rate is from the messages they did consume")
    out.append("  CPU s: the consumer process (user+sys); broker CPU s: the Kafka broker during the run;")
    if eos and a.postgres_pid:
        out.append("  PostgreSQL CPU s: the PostgreSQL server during the run (postmaster, background "
                   "processes, kc's backend);")
    out.append("  other CPU s: everything else on the machine during the run (should be near 0)")
    noisy = [r for rs in runs.values() for r in rs if r.other_cpu > max(0.25, 0.1 * r.wall)]
    if noisy:
        out.append(f"  WARNING: other processes used CPU during {len(noisy)} run(s) "
                   f"(up to {max(r.other_cpu for r in noisy):.2f} s): the machine was not idle")
    if a.total_reps > 1:
        out.append("")
        out.append("all runs (wall msg/s):")
        for p in peers:
            out.append(f"  {p.key}: " + ", ".join(f"{r.wall_rate:,.0f}" for r in runs.get(p.key, [])))
    bad = [r for rs in runs.values() for r in rs if not r.ok]
    if bad:
        out.append("")
        out.append("PROBLEMS:")
        for r in bad:
            out.append(f"  {r.label} run {r.rep}: {r.problem} (logs: {r.log_err})")
    out.append("")
    if a.produce_seconds:
        producer = "harness.py produce, confluent-kafka" if parallel else "kc produce"
        out.append(f"producing the {a.messages:,} messages ({producer}, idempotent, acks=all): "
                   f"{a.produce_seconds:.1f} s ({a.messages / a.produce_seconds:,.0f} msg/s)")
    if a.started:
        out.append(f"bench total: {time.time() - a.started:.0f} s "
                   "(dependency check, build, broker start, produce and all consumers)")
    out.append(f"logs and results.json: {a.out}")

    def rate(key, self_=False):
        rs = runs.get(key)
        if not rs:
            return None
        r = median_run(rs)
        if not r.ok:
            return None
        return r.self_rate if self_ else r.wall_rate

    def ratio(x, y):
        return f"{x / y:.2f}" if x and y else "n/a"

    if parallel:
        out += parallel_summary(a, runs, rate, ratio)
    elif eos:
        out += eos_summary(a, runs, rate, ratio)
    else:
        out += throughput_summary(avro, kc_key, peer_key, rate, ratio)
    text = "\n".join(out) + "\n"
    with open(os.path.join(a.out, "table.txt"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 1 if bad else 0


def eos_order(peers: list, rep: int) -> list:
    """The eos scenario's run order in round `rep`: at-least-once first in odd
    rounds, exactly-once first in even ones, so that neither mode of a sink
    always runs on the warmer (or fuller) machine."""
    if rep % 2:
        return peers
    out = list(peers)
    for i in range(len(out) - 1):
        x, y = out[i].key, out[i + 1].key
        if x.endswith("-alo") and y == x[:-4] + "-eos":
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def throughput_summary(avro: bool, kc_key: str, peer_key: str, rate, ratio) -> list:
    """The last lines of the json and avro scenarios: the ratios."""
    out = []
    kc, raw, conf = rate(kc_key), rate("raw"), rate(peer_key)
    kcs, raws, confs = rate(kc_key, True), rate("raw", True), rate(peer_key, True)
    kc_name, peer_name = ("kc-avro", "confluent-avro") if avro else ("kc", "confluent-kafka")
    out.append(f"self-reported (steady-state) ratios, for reference: {kc_name}/raw {ratio(kcs, raws)}, "
               f"{kc_name}/{peer_name} {ratio(kcs, confs)}")
    out.append(f"ratio {kc_name}/raw: {ratio(kc, raw)}")
    out.append(f"ratio {kc_name}/{peer_name}: {ratio(kc, conf)}")
    return out


def parallel_summary(a, runs: dict, rate, ratio) -> list:
    """The last lines of the latency and cpu scenarios: the output checks,
    the Python pattern's ordering counts, the ratios and (latency) the
    target. Ratios use wall msg/s of the median runs, like the other
    scenarios; the self-reported figures follow for reference."""
    out = []

    def checks(key):
        rs = [r for r in runs.get(key, []) if r.verified is not None]
        if not rs:
            return None
        good = sum(1 for r in rs if r.verified)
        return (f"order per key intact ({key}): {'yes' if good == len(rs) else 'no'} "
                f"({good} of {len(rs)} run(s) passed; median run: {median_run(rs).verify_detail})")

    def python_counts(key):
        rs = runs.get(key)
        if not rs:
            return None
        r = median_run(rs)
        e = r.extra
        return (f"{key} (median run): {r.messages or 0:,} processed and committed of "
                f"{e.get('submitted', '?')} submitted; per-key order not guaranteed by the pattern: "
                f"{e.get('key_order_violations', '?')} records completed after a later one of their key; "
                f"{e.get('backward_commits', '?')} commits went back below an earlier commit")

    def out_of_order(key):
        # the median run's count, None without a (complete) checked run
        rs = [r for r in runs.get(key, []) if r.verified is not None]
        return median_run(rs).extra.get("out_of_order") if rs else None

    if a.scenario == "latency":
        for line in (checks("kc-key"), python_counts("python-threadpool")):
            if line:
                out.append(line)
        # What kc-key's check is worth (see make_parallel_peers): the controls.
        sees_async = sees_workers = key_workers_ok = None
        ctl_async, ctl_workers = out_of_order("order-control-async"), out_of_order("order-control-workers")
        if ctl_async is not None:
            sees_async = ctl_async > 0
            out.append(f"control order-control-async (kc-key's form, unordered, random latency): {ctl_async} "
                       "records out of order per key: " +
                       ("kc-key's file shows completion order, so its check tests key ordering" if sees_async else
                        "this kc writes a record when it starts it, so kc-key's file shows start order (offset "
                        "order whatever the mode): kc-key's check shows completeness only"))
        if ctl_workers is not None:
            sees_workers = ctl_workers > 0
            rs = [r for r in runs.get("order-key-workers", []) if r.verified is not None]
            key_workers_ok = bool(rs) and all(r.verified for r in rs)
            out.append(f"order check, worker form (files in completion order, random latency): "
                       f"--ordering key {out_of_order('order-key-workers')} out of order "
                       f"({'passed' if key_workers_ok else 'FAILED'}); control --ordering unordered {ctl_workers} "
                       f"out of order (the check {'sees' if sees_workers else 'does NOT see'} reordering)")
        key, py, part, unord = rate("kc-key"), rate("python-threadpool"), rate("kc-partition"), rate("kc-unordered")
        keys, pys, parts = rate("kc-key", True), rate("python-threadpool", True), rate("kc-partition", True)
        ceiling = a.max_in_flight * 1000.0 / a.latency_ms
        target = 0.75 * ceiling
        out.append(f"self-reported (from first assignment) ratios, for reference: kc-key/python-threadpool "
                   f"{ratio(keys, pys)}, kc-key/kc-partition {ratio(keys, parts)}")
        if unord:
            out.append(f"kc-unordered (diagnostic): {unord:,.0f} msg/s wall; kc-key/kc-unordered {ratio(key, unord)}")
        out.append(f"ratio kc-key/python-threadpool: {ratio(key, py)}")
        out.append(f"ratio kc-key/kc-partition: {ratio(key, part)}")
        verified = bool(runs.get("kc-key")) and all(r.verified for r in runs["kc-key"])
        # order per key intact: kc-key's own file when it can show reordering,
        # else kc-key's completeness plus the worker-form check (same
        # dispatcher, records written at completion)
        if sees_async:
            basis, ordered = "kc-key's output", verified
        elif key_workers_ok is not None and sees_workers:
            basis, ordered = "kc-key's output (complete) and the worker-form order check", \
                verified and key_workers_ok
        else:
            basis, ordered = "kc-key's output only (start order; no working control)", verified

        def met(x):
            return "n/a" if not x else ("yes" if x >= target and ordered else "no")
        out.append(f"target kc-key >= {target:,.0f} msg/s (75% of {a.max_in_flight:,} in flight / "
                   f"{a.latency_ms:g} ms = {ceiling:,.0f}/s) with order per key intact: "
                   f"wall {met(key)} ({key or 0:,.0f} msg/s), self-reported {met(keys)} ({keys or 0:,.0f} msg/s); "
                   f"order per key intact: {'yes' if ordered else 'no'} (from {basis})")
        return out
    for line in (checks("kc-cpu1"), checks("kc-cpu2"), python_counts("python-threadpool-cpu")):
        if line:
            out.append(line)
    one, two, py, poll = rate("kc-cpu1"), rate("kc-cpu2"), rate("python-threadpool-cpu"), rate("kc-cpu-poll")
    ones, twos = rate("kc-cpu1", True), rate("kc-cpu2", True)
    ceiling = 1e6 / a.cpu_us
    out.append(f"busy loop alone: {ceiling:,.0f} msg/s per core; kc-cpu1 {one or 0:,.0f}, kc-cpu2 {two or 0:,.0f}"
               + (f", kc-cpu-poll (diagnostic) {poll:,.0f}" if poll else "") + " msg/s wall")
    out.append(f"self-reported (from first assignment) ratio, for reference: kc-cpu2/kc-cpu1 {ratio(twos, ones)}")
    out.append(f"ratio kc-cpu2/kc-cpu1: {ratio(two, one)}")
    out.append(f"ratio kc-cpu2/python-threadpool-cpu: {ratio(two, py)}")
    return out


# ----------------------------------------------------------------- keyed records

def keyed_plan(messages: int, keys: int, seed: int) -> list:
    """The key index of every record of the latency and cpu scenarios, in
    produce order: each of the `keys` keys messages // keys times (the first
    messages % keys keys once more), shuffled by random.Random(seed). Random
    rather than round-robin so that records of one key do meet within kc's
    in-flight window (round-robin over 10,000 keys never puts two of one key
    within 1,000 in flight, and key ordering would go untested)."""
    plan = [i % keys for i in range(messages)]
    random.Random(seed).shuffle(plan)
    return plan


def keyed_value(i: int, key: str, seq: int) -> bytes:
    return json.dumps({"key": key, "seq": seq, "n": i, "order_id": f"ord-{i:08d}",
                       "amount_cents": (i * 7919) % 100_000, "currency": "EUR"},
                      separators=(",", ":")).encode()


def cmd_produce(a) -> int:
    """Writes the keyed records (keyed_plan) to the topic with confluent-kafka:
    idempotent, acks=all, so each partition holds them in produce order and
    every key's seq runs 0, 1, 2, ... by offset."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "compression.type": "none"})
    acked = failed = 0
    last_error = ""

    def delivered(err, _msg):
        nonlocal acked, failed, last_error
        if err is None:
            acked += 1
        else:
            failed += 1
            last_error = str(err)

    seqs: collections.Counter = collections.Counter()
    t0 = time.monotonic()
    for i, k in enumerate(keyed_plan(a.messages, a.keys, a.seed)):
        key = f"key-{k}"
        value = keyed_value(i, key, seqs[k])
        seqs[k] += 1
        while True:
            try:
                p.produce(a.topic, value=value, key=key.encode(), on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.1)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    secs = time.monotonic() - t0
    print(f"harness produce: {a.messages} records ({len(seqs)} keys, seed {a.seed}) to {a.topic}, "
          f"acknowledged {acked}, failed {failed}, unsent {left} in {secs:.2f} s "
          f"({a.messages / secs if secs > 0 else 0:.0f} msg/s)"
          + (f"; last error: {last_error}" if last_error else ""), file=sys.stderr)
    return 0 if acked == a.messages and failed == 0 and left == 0 else 1


def verify_jsonl(path: str, messages: int, keys: int, seed: int) -> tuple:
    """Checks a kc jsonl sink file of the keyed records: every record exactly
    once (by (key, seq) and by (partition, offset)), and each key's seq
    strictly increasing in the order of the lines, i.e. the order kc wrote
    them. Returns (ok, one-line detail starting "order per key intact: yes|no",
    counts: out_of_order and complete, the file's records all there once)."""
    expected = collections.Counter(f"key-{k}" for k in keyed_plan(messages, keys, seed))
    last: dict = {}
    pairs: set = set()
    offsets: set = set()
    lines = dup = dup_offset = out_of_order = unexpected = unreadable = 0
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        return False, f"order per key intact: no (no output: {e})", {"out_of_order": 0, "complete": False}
    with f:
        for line in f:
            lines += 1
            try:
                o = json.loads(line)
                v = o["value"]
                key, seq = v["key"], v["seq"]
                where = (o["partition"], o["offset"])
            except (ValueError, KeyError, TypeError):
                unreadable += 1
                continue
            if o.get("key") != key:
                unreadable += 1  # the record key and the key in the value disagree
            if where in offsets:
                dup_offset += 1
            offsets.add(where)
            if (key, seq) in pairs:
                dup += 1
                continue
            pairs.add((key, seq))
            if not 0 <= seq < expected.get(key, 0):
                unexpected += 1
            if seq <= last.get(key, -1):
                out_of_order += 1
            else:
                last[key] = seq
    missing = sum(expected.values()) - (len(pairs) - unexpected)
    intact = out_of_order == 0
    complete = (lines == messages and missing == 0 and dup == 0 and dup_offset == 0
                and unexpected == 0 and unreadable == 0)
    ok = intact and complete
    detail = (f"order per key intact: {'yes' if intact else 'no'} ({out_of_order} records out of order); "
              f"{lines:,} records of {messages:,} over {len(last):,} keys; missing {missing}, "
              f"duplicates {dup} (by offset {dup_offset}), unexpected {unexpected}, unreadable {unreadable}")
    return ok, detail, {"out_of_order": out_of_order, "complete": complete}


def cmd_verify(a) -> int:
    ok, detail, _ = verify_jsonl(a.path, a.messages, a.keys, a.seed)
    print(detail)
    return 0 if ok else 1


# ----------------------------------------------------------------- count / env

def cmd_count(a) -> int:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "kc-bench-count"})
    md = c.list_topics(a.topic, timeout=30)
    t = md.topics.get(a.topic)
    if t is None or t.error is not None:
        print(f"harness: topic {a.topic}: {t.error if t else 'missing'}", file=sys.stderr)
        return 1
    total = 0
    for pid in t.partitions:
        lo, hi = c.get_watermark_offsets(TopicPartition(a.topic, pid), timeout=30)
        total += hi - lo
    c.close()
    print(total)
    return 0


def cmd_env(a) -> int:
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""
    cpu = re.search(r"^model name\s*:\s*(.+)$", read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)
    osr = re.search(r'^PRETTY_NAME="?([^"\n]+)', read("/etc/os-release"), re.M)
    print(f"os: {osr.group(1) if osr else '?'}")
    print(f"kernel: {platform.release()}")
    print(f"nproc: {os.cpu_count()}")
    print(f"cpu: {cpu.group(1).strip() if cpu else '?'}")
    print(f"ram: {int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "ram: ?")
    if a.rdkafka_performance:
        try:
            r = subprocess.run([a.rdkafka_performance, "-h"], capture_output=True, text=True, timeout=10)
            v = re.search(r"librdkafka version (\S+)", r.stdout + r.stderr)
            print(f"librdkafka (kc, rdkafka_performance): {v.group(1) if v else '?'}")
        except OSError as e:
            print(f"librdkafka (kc, rdkafka_performance): ? ({e})")
    print(f"python: {platform.python_version()}")
    try:
        import confluent_kafka
        v, lv = confluent_kafka.version(), confluent_kafka.libversion()
        v = v[0] if isinstance(v, tuple) else v
        lv = lv[0] if isinstance(lv, tuple) else lv
        print(f"confluent-kafka: {v} (bundled librdkafka {lv})")
    except ImportError:
        print("confluent-kafka: not installed")
    if a.scenario == "avro":
        try:
            import fastavro
            print(f"fastavro (confluent-kafka's AvroDeserializer): {fastavro.__version__}")
        except ImportError:
            print("fastavro: not installed")
    try:
        import kafka
        print(f"kafka-python: {kafka.__version__}")
    except ImportError:
        print("kafka-python: not installed")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--topic", required=True)
    r.add_argument("--partitions", type=int, default=4)
    r.add_argument("--messages", type=int, default=1_000_000)
    r.add_argument("--repeat", type=int, default=1)
    r.add_argument("--fast-repeat", type=int, default=5,
                   help="runs of the ~1 s consumers (rdkafka_performance, kc): max(this, --repeat)")
    r.add_argument("--kc", required=True)
    r.add_argument("--rdkafka-performance", required=True)
    r.add_argument("--python", default=sys.executable)
    r.add_argument("--out", required=True)
    r.add_argument("--run-id", default="")
    r.add_argument("--only", default="", help="comma list of peer keys "
                   "(json: raw,kc,kc-raw,kc-commit50k,confluent,confluent-per-msg,kafka-python; "
                   "avro: raw,kc-avro,kc-raw,confluent-avro; "
                   "latency: python-threadpool,kc-partition,kc-key,kc-unordered,order-key-workers,"
                   "order-control-workers,order-control-async; "
                   "cpu: kc-cpu1,kc-cpu2,kc-cpu-poll,python-threadpool-cpu; "
                   "eos: kc,sqlite-alo,sqlite-eos,postgres-alo,postgres-eos,kafka-alo,kafka-eos)")
    r.add_argument("--scenario", choices=SCENARIOS, default="json",
                   help="what the topic holds: JSON order documents, or Avro-encoded orders "
                        "(Confluent wire format; needs --registry); latency and cpu: the keyed "
                        "records of `produce`, consumed by a slow handler (parallel processing)")
    r.add_argument("--registry", default="", help="Schema Registry URL (avro scenario)")
    r.add_argument("--diagnostics", type=int, default=1,
                   help="1: also run kc with --value-format raw and (json) with --commit-every 50000")
    r.add_argument("--broker-pid", type=int, default=0, help="pid of the broker, for its CPU time")
    r.add_argument("--started", type=float, default=0.0, help="epoch seconds bench/run started")
    r.add_argument("--produce-seconds", type=float, default=0.0)
    r.add_argument("--warmup", type=int, default=1,
                   help="1: unmeasured passes over the topic first (rdkafka_performance, kc)")
    r.add_argument("--settle", type=float, default=1.0, help="seconds to wait before each run")
    r.add_argument("--full-timeout", type=float, default=240.0)
    r.add_argument("--per-message-seconds", type=float, default=30.0)
    r.add_argument("--per-message-max", type=int, default=100_000)
    r.add_argument("--kafka-python-seconds", type=float, default=120.0)
    # latency and cpu scenarios
    r.add_argument("--keys", type=int, default=10_000, help="keys of the produced records (for the checks)")
    r.add_argument("--seed", type=int, default=KEYED_SEED, help="seed the records were produced with")
    r.add_argument("--latency-ms", type=float, default=50.0, help="latency: the handler's wait per record")
    r.add_argument("--max-in-flight", type=int, default=1000, help="latency: kc-key's --max-in-flight")
    r.add_argument("--order-checks", type=int, default=1,
                   help="latency: 1: also run the order check and its two controls (order-*)")
    r.add_argument("--check-workers", type=int, default=64, help="latency: --concurrency of the order checks")
    r.add_argument("--check-latency-ms", type=float, default=5.0,
                   help="latency: the worker-form order checks wait this plus 0..this ms per record")
    r.add_argument("--partition-messages", type=int, default=400,
                   help="latency: kc-partition's sample (--max-messages)")
    r.add_argument("--threadpool-messages", type=int, default=3200,
                   help="latency: the Python ThreadPoolExecutor peer's sample (records processed)")
    r.add_argument("--threadpool-seconds", type=float, default=60.0,
                   help="time budget of the Python ThreadPoolExecutor peers")
    r.add_argument("--threadpool-workers", type=int, default=8, help="the pool's workers (the guide: 8)")
    r.add_argument("--cpu-us", type=float, default=200.0, help="cpu: the handler's busy loop per record")
    r.add_argument("--cpu-ordering", choices=("partition", "key", "unordered"), default="partition",
                   help="cpu: kc's --ordering")
    # eos scenario
    r.add_argument("--postgres", default="", help="eos: the PostgreSQL URI (scripts/postgres start)")
    r.add_argument("--postgres-pid", type=int, default=0, help="eos: pid of the postmaster, for its CPU time")
    r.add_argument("--eos-commit-every", type=int, default=500,
                   help="eos: --commit-every of every kc run (records per commit / transaction)")
    r.add_argument("--eos-timeout", type=float, default=1800.0, help="eos: hard limit of one sink run (s)")
    r.add_argument("--keep-sinks", type=int, default=0,
                   help="eos: 1: keep every run's SQLite file, PostgreSQL table and output topic")
    c = sub.add_parser("count")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--topic", required=True)
    co = sub.add_parser("count-output")
    co.add_argument("kind", choices=EOS_SINKS)
    co.add_argument("--path", default="", help="sqlite: the file")
    co.add_argument("--uri", default="", help="postgres: the URI")
    co.add_argument("--table", default="kc_records", help="postgres: the table")
    co.add_argument("--bootstrap", default="", help="kafka: the broker")
    co.add_argument("--topic", default="", help="kafka: the topic (read with isolation.level=read_committed)")
    tp = sub.add_parser("topic")
    tp.add_argument("op", choices=("create", "delete"))
    tp.add_argument("--bootstrap", required=True)
    tp.add_argument("--topic", required=True)
    tp.add_argument("--partitions", type=int, default=4)
    pr = sub.add_parser("produce")
    pr.add_argument("--bootstrap", required=True)
    pr.add_argument("--topic", required=True)
    pr.add_argument("--messages", type=int, required=True)
    pr.add_argument("--keys", type=int, required=True)
    pr.add_argument("--seed", type=int, default=KEYED_SEED)
    v = sub.add_parser("verify")
    v.add_argument("--path", required=True)
    v.add_argument("--messages", type=int, required=True)
    v.add_argument("--keys", type=int, required=True)
    v.add_argument("--seed", type=int, default=KEYED_SEED)
    e = sub.add_parser("env")
    e.add_argument("--rdkafka-performance", default="")
    e.add_argument("--scenario", choices=SCENARIOS + ("stuck",), default="json")
    a = ap.parse_args()
    if a.cmd == "run" and a.scenario == "avro" and not a.registry:
        ap.error("--scenario avro needs --registry URL")
    if a.cmd == "run" and a.scenario == "eos" and not a.postgres:
        ap.error("--scenario eos needs --postgres URI")
    if getattr(a, "keys", 1) < 1 or getattr(a, "messages", 1) < 1:
        ap.error("--keys and --messages must be positive")
    return {"run": cmd_run, "count": cmd_count, "count-output": cmd_count_output, "topic": cmd_topic, "produce": cmd_produce, "verify": cmd_verify,
            "env": cmd_env}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
