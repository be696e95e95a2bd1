#!/usr/bin/env python3
"""Schema Registry peer: confluent-kafka's own serializers, to cross-check kc.

Run it with the venv's Python ($KC_CACHE/venv/bin/python, made by
`scripts/install-deps --python`: confluent-kafka[avro,protobuf,json,
schemaregistry] 2.16.1). It needs `protoc` (Debian's protobuf-compiler) for
the protobuf format, and nothing else beyond the venv.

  produce   --bootstrap B --registry URL --topic T --format avro|protobuf|jsonschema
            --case CASE --count N [--expected OUT.jsonl] [--partitions P] [--seed S]
      Creates T if missing, produces N records whose values are made by
      confluent-kafka's AvroSerializer / ProtobufSerializer / JSONSerializer
      (auto-registered under "<T>-value") and whose keys are the UTF-8 strings
      "<case>-<i>", then writes OUT.jsonl: one {"key", "value"} line per record,
      in production order, where value is what the matching confluent
      Deserializer makes of the very bytes that were produced, normalised (see
      normalize()). kc consuming T must render the same values. Without
      --expected nothing is decoded (faster: to fill a benchmark topic).
      Records vary with the index and --seed (default 1), deterministically.
      Cases: avro: order (order_v1.avsc), versions (the first half with
      order_v1.avsc, the rest with order_v2.avsc, one subject), refs
      (order_ref.avsc referring to kc.test.shared.Customer from customer.avsc,
      registered first under the subject "kc.test.shared.Customer");
      protobuf: order (kc.test.Order of order.proto, the third message;
      common.proto is registered under "common.proto" as a reference);
      jsonschema: order (order.schema.json).

  consume   --bootstrap B --registry URL --topic T --format F --count N --out OUT.jsonl
            [--timeout S] [--protobuf-message NAME]
      Reads N records from the beginning of every partition of T (assign(), no
      group commit), deserializes each value with the confluent Deserializer,
      normalises it and writes {"key", "value"} lines ordered by (partition,
      offset). Exits 1 with a message on stderr when fewer than N records
      arrive within --timeout seconds (default 60), 2 when one does not
      deserialize. This checks kc's encoders against confluent's decoders.

  compare   A.jsonl B.jsonl
      Compares two such files by key: the same keys, and values equal as JSON
      values, numbers within float32 rounding (relative 1e-6). Exit 0 if equal,
      1 (with the first differences on stderr) if not.

Normalised values (kc's JSON rendering; see normalize()):
  Avro: records/maps as objects, arrays as arrays, unions as the plain value,
    enum as its symbol, bytes/fixed as standard base64, float/double as
    numbers (NaN/Infinity/-Infinity as strings), decimal as the exact decimal
    string with the schema's scale ("-12.30"), date "YYYY-MM-DD", time-millis
    "HH:MM:SS.mmm", time-micros "HH:MM:SS.uuuuuu", timestamp-millis
    "YYYY-MM-DDTHH:MM:SS.mmmZ", timestamp-micros "...SS.uuuuuuZ",
    local-timestamp-* the same without "Z", uuid as its string.
  Protobuf: google.protobuf.json_format.MessageToDict(msg) with its defaults.
  JSON Schema: the document as is.

Subject names: the TOPIC strategy ("<topic>-value") is set explicitly.
confluent-kafka 2.16's default is ASSOCIATED, which first asks the registry
GET /associations/resources/-/<topic>?resourceType=topic&associationType=value
and falls back to "<topic>-value" on 404.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import decimal
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.normpath(os.path.join(HERE, "..", "schemas"))
CASES = {"avro": ("order", "versions", "refs"), "protobuf": ("order",), "jsonschema": ("order",)}
DEFAULT_PROTOBUF_MESSAGE = "kc.test.Order"
CUSTOMER_SUBJECT = "kc.test.shared.Customer"   # the Avro reference's subject (its full name)
UTC = dt.timezone.utc


def log(msg: str) -> None:
    print(f"sr_peer: {msg}", file=sys.stderr, flush=True)


def read_schema(name: str) -> str:
    with open(os.path.join(SCHEMAS, name), encoding="utf-8") as f:
        return f.read()


def serde_conf(**extra: Any) -> dict:
    # TOPIC strategy explicitly: see the module docstring (ASSOCIATED default).
    return {"subject.name.strategy.type": "TOPIC", **extra}


# ============================================================== normalisation

AVRO_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def b64(b: bytes) -> str:
    return base64.standard_b64encode(b).decode("ascii")


def json_number(x: float) -> Any:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)


def fmt_time(t: dt.time, micros: bool) -> str:
    frac = f"{t.microsecond:06d}" if micros else f"{t.microsecond // 1000:03d}"
    return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{frac}"


def fmt_datetime(d: dt.datetime, micros: bool, utc: bool) -> str:
    if d.tzinfo is not None:
        d = d.astimezone(UTC)
    return (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T"
            + fmt_time(d.time(), micros) + ("Z" if utc else ""))


def fmt_decimal(d: decimal.Decimal) -> str:
    # fastavro gives the value with the schema's scale as its exponent, so
    # this is the unscaled integer with the point inserted: "-12.30", "0.05".
    return format(d, "f")


class AvroNames:
    """Named types (records, enums, fixed) of a schema and its references, by full name."""

    def __init__(self) -> None:
        self.types: dict[str, dict] = {}

    @staticmethod
    def full_name(name: str, ns: str | None) -> str:
        return name if "." in name or not ns else f"{ns}.{name}"

    def collect(self, s: Any, ns: str | None = None) -> None:
        if isinstance(s, list):
            for b in s:
                self.collect(b, ns)
        elif isinstance(s, dict):
            t = s.get("type")
            if t in ("record", "error", "enum", "fixed"):
                full = self.full_name(s["name"], s.get("namespace", ns))
                self.types[full] = s
                inner_ns = full.rpartition(".")[0] or None
                for f in s.get("fields", ()):
                    self.collect(f["type"], inner_ns)
            elif t == "array":
                self.collect(s["items"], ns)
            elif t == "map":
                self.collect(s["values"], ns)
            elif isinstance(t, (dict, list)):
                self.collect(t, ns)

    def resolve(self, s: Any, ns: str | None) -> tuple[Any, str | None]:
        """(schema as a dict or primitive name, namespace for names inside it)."""
        while True:
            if isinstance(s, str):
                if s in AVRO_PRIMITIVES:
                    return s, ns
                full = self.full_name(s, ns)
                t = self.types.get(full) or self.types.get(s)
                if t is None:
                    raise ValueError(f"unknown Avro type {s!r}")
                return t, full.rpartition(".")[0] or None
            if isinstance(s, dict):
                t = s.get("type")
                if isinstance(t, (dict, list)) or (isinstance(t, str) and t in AVRO_PRIMITIVES
                                                     and not s.get("logicalType")):
                    s = t
                    continue
                if t in ("record", "error", "enum", "fixed"):
                    full = self.full_name(s["name"], s.get("namespace", ns))
                    return s, full.rpartition(".")[0] or None
                if isinstance(t, str) and t not in AVRO_PRIMITIVES and t not in ("array", "map"):
                    s = t   # {"type": "some.Named"}
                    continue
                return s, ns
            return s, ns   # a union (list)


def _avro_kind(s: Any) -> tuple[str, str | None]:
    if isinstance(s, str):
        return s, None
    if isinstance(s, list):
        return "union", None
    return s["type"], s.get("logicalType")


def _avro_matches(v: Any, s: Any, names: AvroNames, ns: str | None) -> bool:
    s, ns = names.resolve(s, ns)
    kind, lt = _avro_kind(s)
    if kind == "null":
        return v is None
    if kind == "boolean":
        return isinstance(v, bool)
    if kind in ("int", "long"):
        if lt == "date":
            return isinstance(v, dt.date) and not isinstance(v, dt.datetime)
        if lt in ("time-millis", "time-micros"):
            return isinstance(v, dt.time)
        if lt and "timestamp" in lt:
            return isinstance(v, dt.datetime)
        return isinstance(v, int) and not isinstance(v, bool)
    if kind in ("float", "double"):
        return isinstance(v, float)
    if kind == "string":
        return isinstance(v, (str, uuid.UUID))
    if kind in ("bytes", "fixed"):
        if lt == "decimal":
            return isinstance(v, decimal.Decimal)
        return isinstance(v, (bytes, bytearray)) and (kind == "bytes" or len(v) == s["size"])
    if kind == "enum":
        return isinstance(v, str) and v in s["symbols"]
    if kind == "array":
        return isinstance(v, list)
    if kind == "map":
        return isinstance(v, dict)
    if kind in ("record", "error"):
        return isinstance(v, dict) and set(v) <= {f["name"] for f in s["fields"]}
    return False


def normalize_avro(v: Any, s: Any, names: AvroNames, ns: str | None = None) -> Any:
    """A value as fastavro (confluent's AvroDeserializer) returns it -> kc's JSON rendering."""
    s, ns = names.resolve(s, ns)
    kind, lt = _avro_kind(s)
    if kind == "union":
        for branch in s:
            if _avro_matches(v, branch, names, ns):
                return normalize_avro(v, branch, names, ns)
        raise ValueError(f"no branch of union {s} matches {v!r}")
    if v is None:
        return None
    if kind in ("record", "error"):
        return {f["name"]: normalize_avro(v.get(f["name"]), f["type"], names, ns) for f in s["fields"]}
    if kind == "array":
        return [normalize_avro(x, s["items"], names, ns) for x in v]
    if kind == "map":
        return {k: normalize_avro(x, s["values"], names, ns) for k, x in v.items()}
    if kind == "enum" or kind == "boolean":
        return v
    if lt == "decimal" and isinstance(v, decimal.Decimal):
        return fmt_decimal(v)
    if kind in ("bytes", "fixed"):
        return b64(bytes(v))
    if kind in ("float", "double"):
        return json_number(v)
    if lt == "date" and isinstance(v, dt.date):
        return v.isoformat()
    if lt in ("time-millis", "time-micros") and isinstance(v, dt.time):
        return fmt_time(v, lt == "time-micros")
    if lt in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros") \
            and isinstance(v, dt.datetime):
        return fmt_datetime(v, lt.endswith("micros"), not lt.startswith("local-"))
    if isinstance(v, uuid.UUID):
        return str(v)
    return v   # int, long, string


def normalize(fmt: str, value: Any, writer_schema: Any = None, names: AvroNames | None = None) -> Any:
    """The one normalisation used by produce (expected output) and consume.

    avro: `value` from AvroDeserializer, `writer_schema` the parsed JSON of the
    writer schema and `names` its named types (references included);
    protobuf: `value` a message from ProtobufDeserializer; jsonschema: the
    document from JSONDeserializer.
    """
    if value is None:
        return None
    if fmt == "avro":
        return normalize_avro(value, writer_schema, names or AvroNames())
    if fmt == "protobuf":
        from google.protobuf import json_format
        return json_format.MessageToDict(value)
    return value


class AvroWriterSchemas:
    """The writer schema of a framed Avro value (by its schema id), references resolved.

    Uses the same SchemaRegistryClient as the deserializer, whose cache means
    no extra requests after the first value of each id.
    """

    def __init__(self, client: SchemaRegistryClient) -> None:
        self.client = client
        self.by_id: dict[int, tuple[Any, AvroNames]] = {}

    def _add_refs(self, schema: Schema, names: AvroNames, seen: set) -> None:
        for ref in schema.references or ():
            if (ref.subject, ref.version) in seen:
                continue
            seen.add((ref.subject, ref.version))
            rs = self.client.get_version(ref.subject, ref.version).schema
            self._add_refs(rs, names, seen)
            names.collect(json.loads(rs.schema_str))

    def for_bytes(self, data: bytes) -> tuple[Any, AvroNames]:
        if len(data) < 5 or data[0] != 0:
            raise ValueError("not a Confluent-framed value (magic byte 0 + 4-byte schema id)")
        schema_id = int.from_bytes(data[1:5], "big")
        if schema_id not in self.by_id:
            schema = self.client.get_schema(schema_id)
            names = AvroNames()
            self._add_refs(schema, names, set())
            parsed = json.loads(schema.schema_str)
            names.collect(parsed)
            self.by_id[schema_id] = (parsed, names)
        return self.by_id[schema_id]


# ============================================================== protobuf classes

def protobuf_message_class(full_name: str, proto_file: str = "order.proto", proto_dir: str = SCHEMAS):
    """The Python class of message `full_name`, built at run time from .proto files.

    protoc (Debian's protobuf-compiler) writes a FileDescriptorSet with every
    import; the files go into a fresh DescriptorPool in dependency order and
    message_factory makes the class. No generated _pb2.py, so no gencode
    version check against the protobuf 7.x runtime from PyPI.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    protoc = shutil.which("protoc")
    if protoc is None:
        raise SystemExit("sr_peer: protoc is missing (apt-get install protobuf-compiler)")
    with tempfile.TemporaryDirectory(prefix="sr_peer-") as tmp:
        out = os.path.join(tmp, "set.pb")
        cmd = [protoc, f"-I{proto_dir}"]
        if os.path.exists("/usr/include/google/protobuf/timestamp.proto"):
            cmd.append("-I/usr/include")
        cmd += ["--include_imports", f"--descriptor_set_out={out}", proto_file]
        r = subprocess.run(cmd, cwd=proto_dir, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"sr_peer: {' '.join(cmd)} failed:\n{r.stderr}")
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fdp in fds.file:   # protoc lists dependencies before the files that import them
        pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


# ============================================================== record generators

def _rand_text(rnd: random.Random, n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    unicode = ["é", "ß", "ø", "ü", "€", "日本", "中文", "Ωμέγα", "🚚", "\"", "\\", "\n", "\t", "\u0001"]
    s = "".join(rnd.choice(alphabet) for _ in range(n))
    if rnd.random() < 0.4:
        pos = rnd.randint(0, len(s))
        s = s[:pos] + rnd.choice(unicode) + s[pos:]
    return s


def _rand_datetime(rnd: random.Random, micros: bool) -> dt.datetime:
    # -60 .. +80 years around 1970: before-1970 values are negative on the wire
    seconds = rnd.randint(-60 * 365 * 86400, 80 * 365 * 86400)
    frac = rnd.randint(0, 999_999) if micros else rnd.randint(0, 999) * 1000
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=seconds, microseconds=frac)


def _rand_decimal(rnd: random.Random, scale: int = 2, digits: int = 10) -> decimal.Decimal:
    unscaled = rnd.choice([0, 1, -1, 5, 10000, -10000, rnd.randint(-(10 ** digits - 1), 10 ** digits - 1),
                           rnd.randint(-99_999, 99_999)])
    return decimal.Decimal(unscaled).scaleb(-scale)


def avro_customer(rnd: random.Random, i: int) -> dict:
    return {
        "id": rnd.choice([i + 1, -(i + 1), 2 ** 62 + i, rnd.randint(-2 ** 63, 2 ** 63 - 1)]),
        "name": _rand_text(rnd, rnd.randint(0, 20)),
        "email": None if rnd.random() < 0.3 else f"c{i}@example.com",
        "vip": rnd.random() < 0.5,
    }


def avro_order(rnd: random.Random, i: int, v2: bool = False) -> dict:
    n_items = rnd.choice([0, 1, 2, 3])
    n_tags = rnd.choice([0, 1, 3])
    o = {
        "order_id": f"ORD-{i:06d}",
        "customer": avro_customer(rnd, i),
        "items": [{"sku": f"SKU-{rnd.randint(0, 999):03d}", "qty": rnd.choice([1, 2, 7, -1, 2 ** 31 - 1]),
                   "price": _rand_decimal(rnd)} for _ in range(n_items)],
        "status": rnd.choice(["PENDING", "PAID", "SHIPPED", "CANCELLED"]),
        "note": None if rnd.random() < 0.5 else _rand_text(rnd, rnd.randint(0, 30)),
        "tags": {f"k{j}{_rand_text(rnd, 2)}": _rand_text(rnd, rnd.randint(0, 8)) for j in range(n_tags)},
        "payload": bytes(rnd.getrandbits(8) for _ in range(rnd.choice([0, 1, 2, 3, 16]))),
        "created_at": _rand_datetime(rnd, micros=False),
        "updated_at": None if rnd.random() < 0.3 else _rand_datetime(rnd, micros=True),
        "ship_date": dt.date(1970, 1, 1) + dt.timedelta(days=rnd.randint(-30000, 30000)),
        "pickup_time": dt.time(rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59),
                               rnd.randint(0, 999) * 1000),
        "cutoff_time": dt.time(rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59),
                               rnd.randint(0, 999_999)),
        "local_created_at": _rand_datetime(rnd, micros=False).replace(tzinfo=None),
        "trace_id": uuid.UUID(int=rnd.getrandbits(128)),
        "amount": rnd.choice([0.0, -0.5, 1e-300, 123.45, -98765.4321, 1.7976931348623157e308,
                              rnd.uniform(-1e6, 1e6)]),
        "ratio": rnd.choice([0.0, 0.1, -1.5, 3.4028234663852886e38, rnd.uniform(-10, 10)]),
        "checksum": bytes(rnd.getrandbits(8) for _ in range(4)),
    }
    if v2:
        o["channel"] = rnd.choice(["web", "app", "", "kiosk-ü"])
    return o


def avro_order_ref(rnd: random.Random, i: int) -> dict:
    return {
        "order_id": f"ORD-{i:06d}",
        "customer": avro_customer(rnd, i),
        "previous_customers": [avro_customer(rnd, i + k) for k in range(rnd.choice([0, 1, 2]))],
        "referrer": None if rnd.random() < 0.5 else avro_customer(rnd, i + 100),
        "amount": rnd.uniform(-1000, 1000),
    }


def protobuf_order(cls, rnd: random.Random, i: int):
    m = cls()
    m.order_id = f"ORD-{i:06d}"
    if rnd.random() < 0.8:
        m.customer.id = rnd.choice([0, i + 1, -(i + 1), 2 ** 62 + i])
        m.customer.name = _rand_text(rnd, rnd.randint(0, 20))
        if rnd.random() < 0.5:
            m.customer.email = rnd.choice(["", f"c{i}@example.com"])   # optional: "" is still present
        m.customer.vip = rnd.random() < 0.5
    for _ in range(rnd.choice([0, 1, 3])):
        it = m.items.add()
        it.sku = f"SKU-{rnd.randint(0, 999):03d}"
        it.qty = rnd.choice([0, 1, 5, -3, 2 ** 31 - 1])
        if rnd.random() < 0.8:
            units = rnd.choice([0, 12, -7, rnd.randint(-10 ** 12, 10 ** 12)])
            it.price.currency_code = rnd.choice(["EUR", "USD", "JPY"])
            it.price.units = units
            it.price.nanos = (1 if units >= 0 else -1) * rnd.choice([0, 500_000_000, 990_000_000])
    m.status = rnd.randint(0, 4)
    for j in range(rnd.choice([0, 1, 3])):
        m.tags[f"k{j}{_rand_text(rnd, 2)}"] = _rand_text(rnd, rnd.randint(0, 8))
    m.payload = bytes(rnd.getrandbits(8) for _ in range(rnd.choice([0, 1, 2, 3, 16])))
    if rnd.random() < 0.9:
        # JSON shows 0, 3, 6 or 9 fraction digits: make each of them appear
        m.created_at.FromDatetime(_rand_datetime(rnd, micros=True))
        m.created_at.nanos = rnd.choice([0, m.created_at.nanos // 1_000_000 * 1_000_000, m.created_at.nanos,
                                         m.created_at.nanos + rnd.randint(1, 999)])
    d = rnd.random()
    if d < 0.4:
        m.pickup_store = _rand_text(rnd, rnd.randint(0, 10))
    elif d < 0.8:
        m.ship_to.street = _rand_text(rnd, 12)
        m.ship_to.city = rnd.choice(["Zürich", "Paris", "東京", ""])
        m.ship_to.country_code = rnd.choice(["CH", "FR", "JP"])
        m.ship_to.lines.extend(_rand_text(rnd, 5) for _ in range(rnd.choice([0, 2])))
    if rnd.random() < 0.5:
        m.note = rnd.choice(["", _rand_text(rnd, 15)])
    m.sequence = rnd.choice([0, 1, -1, 2 ** 63 - 1, -2 ** 63, rnd.randint(-2 ** 40, 2 ** 40)])
    m.trace_hi = rnd.choice([0, 2 ** 64 - 1, rnd.getrandbits(64)])
    m.balance_delta = rnd.choice([0, -1, 1, -2 ** 31, 2 ** 31 - 1])
    m.amount = rnd.choice([0.0, -0.5, 123.45, 1e-300, rnd.uniform(-1e6, 1e6)])
    m.ratio = rnd.choice([0.0, 0.1, -1.5, rnd.uniform(-10, 10)])
    if rnd.random() < 0.7:
        m.total.currency_code = "EUR"
        m.total.units = rnd.randint(-10 ** 6, 10 ** 6)
    for _ in range(rnd.choice([0, 2])):
        r = m.refunds[rnd.choice([-5, 0, 1, 42, 2 ** 31 - 1])]
        r.currency_code = "EUR"
        r.units = rnd.randint(-500, 500)
    m.related_ids.extend(rnd.choice([0, -1, 2 ** 63 - 1, rnd.randint(-2 ** 50, 2 ** 50)])
                         for _ in range(rnd.choice([0, 1, 4])))
    m.gift = rnd.random() < 0.3
    return m


def json_order(rnd: random.Random, i: int) -> dict:
    o: dict[str, Any] = {
        "order_id": f"ORD-{i:06d}",
        "customer": {"id": i + 1, "name": _rand_text(rnd, rnd.randint(1, 20))},
        "items": [{"sku": f"{rnd.choice(['ABC', 'XYZ', 'QRS'])}-{rnd.randint(0, 999):03d}",
                   "qty": rnd.randint(1, 1000),
                   "price": rnd.choice([0, 9.99, 120.5, round(rnd.uniform(0, 1000), 2)])}
                  for _ in range(rnd.choice([0, 1, 3]))],
        "status": rnd.choice(["PENDING", "PAID", "SHIPPED", "CANCELLED"]),
        "amount": rnd.choice([0, 12.5, 1e21, round(rnd.uniform(0, 1e6), 2)]),
        "created_at": _rand_datetime(rnd, micros=True).isoformat().replace("+00:00", "Z"),
    }
    if rnd.random() < 0.5:
        o["customer"]["email"] = None if rnd.random() < 0.5 else f"c{i}@example.com"
    if rnd.random() < 0.5:
        o["customer"]["vip"] = rnd.random() < 0.5
    if rnd.random() < 0.5:
        o["note"] = None if rnd.random() < 0.3 else _rand_text(rnd, rnd.randint(0, 40))
    if rnd.random() < 0.6:
        o["tags"] = {f"k{j}": _rand_text(rnd, rnd.randint(0, 8)) for j in range(rnd.choice([0, 2]))}
    if rnd.random() < 0.3:
        o["discount"] = -round(rnd.uniform(0, 50), 2)
    if rnd.random() < 0.3:
        o["gift"] = rnd.random() < 0.5
    return o


# ============================================================== produce

def ensure_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=30)
    if topic in md.topics and md.topics[topic].error is None:
        return
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
    try:
        fut.result(30)
        log(f"created topic {topic} ({partitions} partitions)")
    except KafkaException as e:
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise
    # wait until the metadata shows every partition with a leader
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        t = admin.list_topics(topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions \
                and all(p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.2)
    raise SystemExit(f"sr_peer: topic {topic} has no leaders after 30 s")


def make_serializers(a, client: SchemaRegistryClient, n: int):
    """[(serializer, deserializer, make_value(i))] per record index range, for the case."""
    fmt, case = a.format, a.case
    rnd = random.Random(f"{fmt}/{case}/{a.seed}")   # str seeds are deterministic (unlike hash())
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
        deser = AvroDeserializer(client, conf=serde_conf())
        if case == "order":
            ser = AvroSerializer(client, read_schema("order_v1.avsc"), conf=serde_conf())
            return lambda i: ser, deser, lambda i: avro_order(rnd, i)
        if case == "versions":
            s1 = AvroSerializer(client, read_schema("order_v1.avsc"), conf=serde_conf())
            s2 = AvroSerializer(client, read_schema("order_v2.avsc"), conf=serde_conf())
            half = n // 2
            return (lambda i: s1 if i < half else s2), deser, lambda i: avro_order(rnd, i, v2=i >= half)
        if case == "refs":
            # The referenced schema must be registered first, under a subject of its own;
            # the serializer then registers order_ref with the reference (and, for
            # encoding, fetches customer back by subject/version to resolve the name).
            cust = client.register_schema_full_response(
                CUSTOMER_SUBJECT, Schema(read_schema("customer.avsc"), "AVRO"))
            version = cust.version
            if version is None:   # the register answer may carry only the id
                version = client.lookup_schema(CUSTOMER_SUBJECT, Schema(read_schema("customer.avsc"), "AVRO")).version
            log(f"registered {CUSTOMER_SUBJECT} version {version} (id {cust.schema_id})")
            ref = SchemaReference("kc.test.shared.Customer", CUSTOMER_SUBJECT, version)
            ser = AvroSerializer(client, Schema(read_schema("order_ref.avsc"), "AVRO", [ref]), conf=serde_conf())
            return lambda i: ser, deser, lambda i: avro_order_ref(rnd, i)
    if fmt == "protobuf" and case == "order":
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
        cls = protobuf_message_class(DEFAULT_PROTOBUF_MESSAGE)
        ser = ProtobufSerializer(cls, client, conf=serde_conf())
        deser = ProtobufDeserializer(cls, conf=serde_conf(), schema_registry_client=client)
        return lambda i: ser, deser, lambda i: protobuf_order(cls, rnd, i)
    if fmt == "jsonschema" and case == "order":
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
        text = read_schema("order.schema.json")
        ser = JSONSerializer(text, client, conf=serde_conf())
        deser = JSONDeserializer(None, schema_registry_client=client, conf=serde_conf())
        return lambda i: ser, deser, lambda i: json_order(rnd, i)
    raise SystemExit(f"sr_peer: unknown case {case!r} for format {fmt} (known: {', '.join(CASES[fmt])})")


def cmd_produce(a) -> int:
    client = SchemaRegistryClient({"url": a.registry})
    ensure_topic(a.bootstrap, a.topic, a.partitions)
    ser_for, deser, make_value = make_serializers(a, client, a.count)
    writer = AvroWriterSchemas(client) if a.format == "avro" else None
    producer = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5})
    failures: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(f"{msg.key()!r}: {err}")

    ctx = SerializationContext(a.topic, MessageField.VALUE)
    expected = []
    for i in range(a.count):
        key = f"{a.case}-{i}"
        data = ser_for(i)(make_value(i), ctx)
        if a.expected:
            # The expected value is what confluent's own Deserializer makes of these bytes.
            decoded = deser(data, ctx)
            schema, names = writer.for_bytes(data) if writer else (None, None)
            expected.append({"key": key, "value": normalize(a.format, decoded, schema, names)})
        while True:
            try:
                producer.produce(a.topic, key=key.encode("utf-8"), value=data, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    if left or failures:
        log(f"{left} records not delivered; failures: {failures[:5]}")
        return 1
    if a.expected:
        write_jsonl(a.expected, expected)
    log(f"produced {a.count} {a.format}/{a.case} records to {a.topic}"
        + (f"; expected values in {a.expected}" if a.expected else ""))
    return 0


def write_jsonl(path: str, rows: list) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n")
    os.replace(tmp, path)


# ============================================================== consume

def make_deserializer(a, client: SchemaRegistryClient) -> Callable:
    if a.format == "avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        return AvroDeserializer(client, conf=serde_conf())
    if a.format == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        cls = protobuf_message_class(a.protobuf_message)
        return ProtobufDeserializer(cls, conf=serde_conf(), schema_registry_client=client)
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer
    return JSONDeserializer(None, schema_registry_client=client, conf=serde_conf())


def cmd_consume(a) -> int:
    client = SchemaRegistryClient({"url": a.registry})
    deser = make_deserializer(a, client)
    writer = AvroWriterSchemas(client) if a.format == "avro" else None
    consumer = Consumer({
        "bootstrap.servers": a.bootstrap,
        "group.id": f"sr-peer-{uuid.uuid4()}",   # never used for commits: assign() below
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
    })
    deadline = time.monotonic() + a.timeout
    parts = None
    while time.monotonic() < deadline:
        t = consumer.list_topics(a.topic, timeout=10).topics.get(a.topic)
        if t is not None and t.error is None and t.partitions:
            parts = sorted(t.partitions)
            break
        time.sleep(0.5)
    if parts is None:
        log(f"topic {a.topic} not found within {a.timeout:g} s")
        return 1
    consumer.assign([TopicPartition(a.topic, p, -2) for p in parts])   # -2: OFFSET_BEGINNING
    got = []
    try:
        while len(got) < a.count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                log(f"consumer error: {msg.error()}")
                continue
            ctx = SerializationContext(msg.topic(), MessageField.VALUE, msg.headers())
            key = None if msg.key() is None else msg.key().decode("utf-8")
            data = msg.value()
            try:
                decoded = deser(data, ctx)
                schema, names = writer.for_bytes(data) if (writer and data is not None) else (None, None)
                value = normalize(a.format, decoded, schema, names)
            except Exception as e:  # noqa: BLE001 -- report which record, then fail
                log(f"{msg.topic()}[{msg.partition()}]@{msg.offset()} key={key!r}: "
                    f"{type(e).__name__}: {e}")
                return 2
            got.append(((msg.partition(), msg.offset()), {"key": key, "value": value}))
    finally:
        consumer.close()
    got.sort(key=lambda x: x[0])
    write_jsonl(a.out, [r for _, r in got])
    if len(got) < a.count:
        log(f"only {len(got)} of {a.count} records from {a.topic} within {a.timeout:g} s "
            f"(written to {a.out})")
        return 1
    log(f"consumed {len(got)} {a.format} records from {a.topic} into {a.out}")
    return 0


# ============================================================== compare

def read_jsonl(path: str) -> dict:
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                r = json.loads(line)
                if r["key"] in out:
                    raise SystemExit(f"sr_peer: {path}:{n}: duplicate key {r['key']!r}")
                out[r["key"]] = r["value"]
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def json_equal(x: Any, y: Any, path: str, diffs: list) -> None:
    """Appends to `diffs` where JSON values x and y differ (numbers: within float32 rounding)."""
    if _is_number(x) and _is_number(y):
        if not (x == y or math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-45)):
            diffs.append(f"{path}: {x!r} != {y!r}")
    elif type(x) is not type(y):
        diffs.append(f"{path}: {x!r} != {y!r}")
    elif isinstance(x, dict):
        for k in sorted(set(x) | set(y)):
            if k in x and k in y:
                json_equal(x[k], y[k], f"{path}.{k}", diffs)
            else:
                diffs.append(f"{path}.{k}: {repr(x[k]) if k in x else 'missing'} != "
                             f"{repr(y[k]) if k in y else 'missing'}")
    elif isinstance(x, list):
        if len(x) != len(y):
            diffs.append(f"{path}: {len(x)} elements != {len(y)}")
        for i, (p, q) in enumerate(zip(x, y)):
            json_equal(p, q, f"{path}[{i}]", diffs)
    elif x != y:
        diffs.append(f"{path}: {x!r} != {y!r}")


def cmd_compare(a) -> int:
    x, y = read_jsonl(a.a), read_jsonl(a.b)
    diffs: list[str] = []
    for k in sorted(set(x) | set(y)):
        if k not in x or k not in y:
            diffs.append(f"key {k!r}: only in {a.a if k in x else a.b}")
        else:
            json_equal(x[k], y[k], f"[{k}]", diffs)
    if diffs:
        for d in diffs[:30]:
            log(d)
        log(f"{len(diffs)} differences between {a.a} and {a.b}")
        return 1
    log(f"{len(x)} records equal")
    return 0


# ============================================================== main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--registry", required=True, help="Schema Registry URL, e.g. http://127.0.0.1:8081")
        p.add_argument("--topic", required=True)
        p.add_argument("--format", required=True, choices=sorted(CASES))
        p.add_argument("--count", type=int, required=True)

    p = sub.add_parser("produce", help="produce records with confluent's serializers")
    common(p)
    p.add_argument("--case", required=True, help="avro: order|versions|refs; protobuf, jsonschema: order")
    p.add_argument("--expected", default="",
                   help="where to write the expected {key, value} lines (omitted: do not decode, "
                        "only produce; e.g. to fill a benchmark topic)")
    p.add_argument("--partitions", type=int, default=1, help="when the topic is created (default 1)")
    p.add_argument("--seed", default="1", help="seed of the record generator (default 1)")
    c = sub.add_parser("consume", help="consume and deserialize with confluent's deserializers")
    common(c)
    c.add_argument("--out", required=True)
    c.add_argument("--timeout", type=float, default=60.0)
    c.add_argument("--protobuf-message", default=DEFAULT_PROTOBUF_MESSAGE,
                   help=f"message type in order.proto to decode as (default {DEFAULT_PROTOBUF_MESSAGE})")
    m = sub.add_parser("compare", help="compare two {key, value} JSONL files")
    m.add_argument("a")
    m.add_argument("b")
    a = ap.parse_args()
    if a.cmd == "produce" and a.case not in CASES[a.format]:
        ap.error(f"--case {a.case}: {a.format} cases are {', '.join(CASES[a.format])}")
    return {"produce": cmd_produce, "consume": cmd_consume, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
