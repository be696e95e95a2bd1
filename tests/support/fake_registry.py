#!/usr/bin/env python3
"""A small Confluent Schema Registry for the tests (Python 3.11 stdlib only).

Implements the subset of Confluent's REST API that clients use:

  POST /subjects/{s}/versions          register (or find) a schema -> {"id"}
  POST /subjects/{s}                   look a schema up in a subject
  GET  /subjects                       subject names
  GET  /subjects/{s}/versions          version numbers
  GET  /subjects/{s}/versions/{v}      v: number, "latest" or -1
  GET  /subjects/{s}/versions/{v}/schema   the schema text alone
  GET  /schemas/ids/{id}               {"schema", "schemaType"?, "references"?}
  GET  /schemas/ids/{id}/versions      [{"subject","version"}]
  GET  /schemas/ids/{id}/subjects      [subject]
  GET  /schemas/types
  GET|PUT /config, /config/{s}         always BACKWARD (PUT accepted, ignored)

Ids are global and start at 1; the same (text, type, references) gets the same
id under every subject; a new schema under a subject gets its next version.
Query parameters (?normalize=, ?subject=, ...) are ignored, except
?format=serialized on a Protobuf schema registered as .proto text: like
Confluent's registry, the answer is then the base64 FileDescriptorProto (made
with Debian's protoc), which confluent-kafka Python's deserializer expects. Errors
are {"error_code", "message"} with Confluent's codes (40401 subject not found,
40402 version not found, 40403 schema not found, 42201 invalid schema, 42202
invalid version).

Options:
  --port N                 bind 127.0.0.1:N (0, the default: any free port)
  --port-file PATH         write the port there (atomically) once listening
  --prefix /apis/ccompat/v7   serve the API under this base path
  --basic-auth user:pass   require HTTP basic auth (401 otherwise)
  --bearer TOKEN           require "Authorization: Bearer TOKEN"
                           (with both, either is accepted)
  --tls-cert F --tls-key F [--tls-client-ca F]
                           serve HTTPS; with a client CA, require a client
                           certificate signed by it

Test hooks (never behind auth or the prefix; not counted as requests):
  POST /_admin/fail  {"status": 503, "count": N}
      the next N API requests fail with that status (status 0: the connection
      is dropped without an answer)
  POST /_admin/delay {"ms": 500, "count": N}
      the next N API requests are answered after that delay
  GET  /_admin/stats -> {"requests": N, "by_path": {path: count}}
      (path without query and prefix; failed and rejected requests count)
  POST /_admin/reset   zero the statistics and cancel pending faults

Logs one line per request to stderr (method, path, status; never a header).
SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import http.server
import json
import os
import signal
import subprocess
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(Exception):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Store:
    """Schemas by id and subjects' version lists. One lock for everything."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.schemas: dict[int, dict] = {}  # id -> {"schema", "schemaType", "references"}
        self.ids: dict[tuple, int] = {}  # (type, text, refs) -> id
        self.subjects: dict[str, list[int]] = {}  # subject -> ids, index = version - 1

    @staticmethod
    def _parse_body(body: dict) -> tuple[str, str, list[dict]]:
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise RegistryError(422, 42201, "Invalid schema: 'schema' must be a string")
        schema_type = body.get("schemaType") or "AVRO"
        if schema_type not in ("AVRO", "PROTOBUF", "JSON"):
            raise RegistryError(422, 42201, f"Invalid schema type {schema_type}")
        refs = []
        for r in body.get("references") or []:
            if not isinstance(r, dict) or not isinstance(r.get("name"), str) \
                    or not isinstance(r.get("subject"), str) or not isinstance(r.get("version"), int):
                raise RegistryError(422, 42201, "Invalid schema: bad reference")
            refs.append({"name": r["name"], "subject": r["subject"], "version": r["version"]})
        text = body["schema"]
        if schema_type in ("AVRO", "JSON"):
            try:
                json.loads(text)
            except ValueError as e:
                raise RegistryError(422, 42201, f"Invalid schema: not JSON: {e}") from None
        return text, schema_type, refs

    @staticmethod
    def _key(text: str, schema_type: str, refs: list[dict]) -> tuple:
        return (schema_type, text, tuple((r["name"], r["subject"], r["version"]) for r in refs))

    def _version_id(self, subject: str, version: int) -> int:
        versions = self.subjects.get(subject)
        if versions is None:
            raise RegistryError(404, 40401, f"Subject '{subject}' not found.")
        if version == -1:
            version = len(versions)
        if version < 1 or version > len(versions):
            raise RegistryError(404, 40402, f"Version {version} not found.")
        return versions[version - 1]

    def register(self, subject: str, body: dict) -> dict:
        text, schema_type, refs = self._parse_body(body)
        with self.lock:
            for r in refs:
                try:
                    self._version_id(r["subject"], r["version"])
                except RegistryError:
                    raise RegistryError(422, 42201,
                                        f"Invalid schema: reference {r['name']} to "
                                        f"{r['subject']}/{r['version']} not found") from None
            key = self._key(text, schema_type, refs)
            sid = self.ids.get(key)
            if sid is None:
                sid = len(self.schemas) + 1
                self.ids[key] = sid
                self.schemas[sid] = {"schema": text, "schemaType": schema_type, "references": refs}
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            return {"id": sid}

    def lookup(self, subject: str, body: dict) -> dict:
        text, schema_type, refs = self._parse_body(body)
        with self.lock:
            versions = self.subjects.get(subject)
            if versions is None:
                raise RegistryError(404, 40401, f"Subject '{subject}' not found.")
            sid = self.ids.get(self._key(text, schema_type, refs))
            if sid is None or sid not in versions:
                raise RegistryError(404, 40403, "Schema not found")
            return self._describe(sid, subject, versions.index(sid) + 1)

    def _describe(self, sid: int, subject: str | None = None, version: int | None = None) -> dict:
        s = self.schemas[sid]
        # By id: {"schema", ...}; by subject: {"subject", "id", "version", "schema", ...}.
        out: dict = {} if subject is None else {"subject": subject, "id": sid, "version": version}
        out["schema"] = s["schema"]
        if s["schemaType"] != "AVRO":
            out["schemaType"] = s["schemaType"]
        if s["references"]:
            out["references"] = [dict(r) for r in s["references"]]
        return out

    def by_id(self, sid: int) -> dict:
        with self.lock:
            if sid not in self.schemas:
                raise RegistryError(404, 40403, "Schema not found")
            return self._describe(sid)

    def id_versions(self, sid: int) -> list:
        with self.lock:
            if sid not in self.schemas:
                raise RegistryError(404, 40403, "Schema not found")
            return [{"subject": subj, "version": i + 1}
                    for subj, ids in sorted(self.subjects.items()) for i, x in enumerate(ids) if x == sid]

    def by_version(self, subject: str, version: int) -> dict:
        with self.lock:
            sid = self._version_id(subject, version)
            v = self.subjects[subject].index(sid) + 1
            return self._describe(sid, subject, v)

    def versions(self, subject: str) -> list:
        with self.lock:
            if subject not in self.subjects:
                raise RegistryError(404, 40401, f"Subject '{subject}' not found.")
            return list(range(1, len(self.subjects[subject]) + 1))

    def subject_names(self) -> list:
        with self.lock:
            return sorted(self.subjects)


class Faults:
    """Injected failures and statistics (the /_admin hooks)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fail_status = 0
        self.fail_count = 0
        self.delay_ms = 0
        self.delay_count = 0
        self.requests = 0
        self.by_path: dict[str, int] = {}

    def tally(self, path: str) -> None:
        with self.lock:
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1

    def count(self, path: str) -> tuple[int | None, float]:
        """Counts one API request; returns (status to fail with or None, delay in s)."""
        self.tally(path)
        with self.lock:
            delay = 0.0
            if self.delay_count > 0:
                self.delay_count -= 1
                delay = self.delay_ms / 1000.0
            if self.fail_count > 0:
                self.fail_count -= 1
                return self.fail_status, delay
            return None, delay

    def reset(self) -> None:
        with self.lock:
            self.fail_count = self.delay_count = self.requests = 0
            self.by_path = {}


def parse_version(text: str) -> int:
    if text == "latest":
        return -1
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v == -1 or v >= 1:
        return v
    raise RegistryError(422, 42202, f"The specified version '{text}' is not a valid version id.")


def parse_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RegistryError(404, 40403, "Schema not found") from None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
    server_version = "fake-schema-registry/1"

    # Set on the class by main().
    store: Store
    faults: Faults
    prefix = ""
    basic_auth: str | None = None
    bearer: str | None = None

    def log_message(self, fmt: str, *args) -> None:  # noqa: A003 (stdlib name)
        sys.stderr.write("fake_registry: %s\n" % (fmt % args))

    def log_request(self, code="-", size="-") -> None:
        # The request line only (method, path, protocol): never headers.
        self.log_message("%s %s", self.requestline, code)

    # --- plumbing -------------------------------------------------------

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise RegistryError(400, 400, "Unrecognized request body: not JSON") from None

    def _send(self, status: int, payload) -> None:
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="fake-registry"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, status: int, code: int, message: str) -> None:
        self._send(status, {"error_code": code, "message": message})

    def _authorized(self) -> bool:
        if self.basic_auth is None and self.bearer is None:
            return True
        got = self.headers.get("Authorization") or ""
        if self.basic_auth is not None:
            want = "Basic " + base64.b64encode(self.basic_auth.encode()).decode()
            if hmac.compare_digest(got.encode(), want.encode()):
                return True
        if self.bearer is not None:
            if hmac.compare_digest(got.encode(), ("Bearer " + self.bearer).encode()):
                return True
        return False

    # --- dispatch -------------------------------------------------------

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        self.query = urllib.parse.parse_qs(split.query)
        try:
            body = self._read_body() if method in ("POST", "PUT") else None
        except RegistryError as e:
            self._send_error(e.status, e.code, e.message)
            return
        if path.startswith("/_admin/") or (self.prefix and path.startswith(self.prefix + "/_admin/")):
            self._admin(method, path[path.index("/_admin/"):], body)
            return
        if self.prefix:
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                self.faults.tally(path)  # outside the API: no injected fault applies
                self._send_error(404, 404, "HTTP 404 Not Found")
                return
            path = path[len(self.prefix):] or "/"
        fail, delay = self.faults.count(path)
        if delay:
            time.sleep(delay)
        if fail is not None:
            if fail == 0:
                self.log_message("%s dropped (injected)", self.requestline)
                self.close_connection = True
                return
            self._send_error(fail, fail * 100 if fail < 1000 else fail, f"Injected failure {fail}")
            return
        if not self._authorized():
            self._send_error(401, 401, "Unauthorized")
            return
        try:
            status, payload = self._api(method, path, body)
        except RegistryError as e:
            self._send_error(e.status, e.code, e.message)
            return
        self._send(status, payload)

    def _admin(self, method: str, path: str, body) -> None:
        f = self.faults
        if method == "POST" and path == "/_admin/fail":
            body = body or {}
            with f.lock:
                f.fail_status = int(body.get("status", 503))
                f.fail_count = int(body.get("count", 1))
            self._send(200, {"status": f.fail_status, "count": f.fail_count})
        elif method == "POST" and path == "/_admin/delay":
            body = body or {}
            with f.lock:
                f.delay_ms = int(body.get("ms", 0))
                f.delay_count = int(body.get("count", 1))
            self._send(200, {"ms": f.delay_ms, "count": f.delay_count})
        elif method == "GET" and path == "/_admin/stats":
            with f.lock:
                self._send(200, {"requests": f.requests, "by_path": dict(f.by_path)})
        elif method == "POST" and path == "/_admin/reset":
            f.reset()
            self._send(200, {})
        else:
            self._send_error(404, 404, "HTTP 404 Not Found")

    def _serialized(self, d: dict) -> dict:
        """d with a Protobuf schema given as .proto text turned into base64
        FileDescriptorProto (for ?format=serialized)."""
        if d.get("schemaType") != "PROTOBUF" or _is_base64_descriptor(d["schema"]):
            return d
        files: dict = {}

        def collect(refs, depth=0):
            for r in refs or []:
                if r["name"] in files or depth > 32:
                    continue
                ref = self.store.by_version(r["subject"], int(r["version"]))
                files[r["name"]] = ref["schema"]
                collect(ref.get("references"), depth + 1)

        collect(d.get("references"))
        out = dict(d)
        out["schema"] = _proto_text_to_base64(d["schema"], files)
        return out

    def _api(self, method: str, path: str, body):
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        s = self.store
        n = len(parts)
        if n >= 1 and parts[0] == "config" and n <= 2:
            if method == "GET":
                return 200, {"compatibilityLevel": "BACKWARD"}
            if method == "PUT":
                level = (body or {}).get("compatibility", "BACKWARD")
                return 200, {"compatibility": level}
        elif parts[:1] == ["subjects"]:
            if n == 1 and method == "GET":
                return 200, s.subject_names()
            if n == 2 and method == "POST":
                return 200, s.lookup(parts[1], body)
            if n == 3 and parts[2] == "versions":
                if method == "POST":
                    return 200, s.register(parts[1], body)
                if method == "GET":
                    return 200, s.versions(parts[1])
            if n in (4, 5) and parts[2] == "versions" and method == "GET":
                d = s.by_version(parts[1], parse_version(parts[3]))
                if n == 4:
                    return 200, self._serialized(d) if self.query.get("format") == ["serialized"] else d
                if parts[4] == "schema":
                    return 200, json.loads(d["schema"]) if d.get("schemaType", "AVRO") != "PROTOBUF" \
                        else d["schema"]
        elif parts[:2] == ["schemas", "ids"] and method == "GET":
            if n == 3:
                d = s.by_id(parse_id(parts[2]))
                return 200, self._serialized(d) if self.query.get("format") == ["serialized"] else d
            if n == 4 and parts[3] == "versions":
                return 200, s.id_versions(parse_id(parts[2]))
            if n == 4 and parts[3] == "subjects":
                return 200, sorted({v["subject"] for v in s.id_versions(parse_id(parts[2]))})
        elif parts == ["schemas", "types"] and method == "GET":
            return 200, ["JSON", "PROTOBUF", "AVRO"]
        if method not in ("GET", "POST", "PUT"):
            raise RegistryError(405, 405, "HTTP 405 Method Not Allowed")
        raise RegistryError(404, 404, "HTTP 404 Not Found")


def _is_base64_descriptor(text: str) -> bool:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return len(raw) > 0 and not text.lstrip().startswith(("syntax", "package", "import", "message", "//"))


def _proto_text_to_base64(text: str, imports: dict) -> str:
    """The FileDescriptorProto of `text` (imports: name -> .proto text), base64."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, body in imports.items():
            path = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(body)
        with open(os.path.join(tmp, "default.proto"), "w", encoding="utf-8") as f:
            f.write(text)
        out = os.path.join(tmp, "set.pb")
        r = subprocess.run(["protoc", "-I", tmp, "-I", "/usr/include", f"--descriptor_set_out={out}",
                            "default.proto"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RegistryError(422, 42201, "Invalid schema: " + r.stderr.strip()[:300])
        with open(out, "rb") as f:
            data = f.read()
    # A FileDescriptorSet holding one file: field 1 (tag 0x0a), a varint length, the file.
    if not data or data[0] != 0x0A:
        raise RegistryError(500, 50001, "protoc wrote no descriptor")
    length, shift, i = 0, 0, 1
    while True:
        b = data[i]
        length |= (b & 0x7F) << shift
        i += 1
        shift += 7
        if b < 0x80:
            break
    return base64.b64encode(data[i:i + length]).decode("ascii")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        # TLS handshake failures (wrong CA, no client certificate) and clients
        # that hang up: one line, not a traceback.
        exc = sys.exc_info()[1]
        sys.stderr.write(f"fake_registry: connection from {client_address[0]}: {type(exc).__name__}: {exc}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description="A fake Confluent Schema Registry for tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--basic-auth")
    ap.add_argument("--bearer")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca")
    a = ap.parse_args()

    if bool(a.tls_cert) != bool(a.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if a.tls_client_ca and not a.tls_cert:
        ap.error("--tls-client-ca needs --tls-cert and --tls-key")

    Handler.store = Store()
    Handler.faults = Faults()
    Handler.prefix = a.prefix.rstrip("/")
    if Handler.prefix and not Handler.prefix.startswith("/"):
        Handler.prefix = "/" + Handler.prefix
    Handler.basic_auth = a.basic_auth
    Handler.bearer = a.bearer

    server = Server(("127.0.0.1", a.port), Handler)
    scheme = "http"
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        if a.tls_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(a.tls_client_ca)
        # The handshake happens on the first read, in the request's thread,
        # so a client that fails it does not hold up the accept loop.
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https"

    port = server.server_address[1]
    if a.port_file:
        tmp = f"{a.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, a.port_file)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(f"fake_registry: listening on {scheme}://127.0.0.1:{port}{Handler.prefix}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
