"""STAND-INS for the Kaapana services a radpath run talks to that cannot run here, each on the
address and port its Kaapana service name resolves to inside the box
(tests/kaapana_box_driver.py), speaking the interface Kaapana's code uses as the snapshot
shows it. Tokens are the realm's signed JWTs (tests/kaapana_dwf.py, the Keycloak stand-in);
a request without a valid one is refused.

- OpenSearch, STRICT (``opensearch-service.<services>.svc:9200``, HTTPS, gzip bodies;
  :class:`IndexStore`, :func:`opensearch`): an index store that holds only what clients wrote
  through OpenSearch's REST API (index, update), answering get and search as opensearch-py
  2.7 calls them (kaapanapy's HelperOpensearch, LocalJson2MetaOperator,
  LocalValidationResult2MetaOperator, get_input.py); any query it cannot evaluate is refused
  with 400, never answered loosely. Nothing comes from the PACS: what Kaapana's incoming
  pipeline writes is written by its stand-in (tests/kaapana_box_driver.py, file_series) or, in
  incoming mode, by Kaapana's own incoming DAG (tests/kaapana_ctp.py).
- MinIO's STS (``minio-service.<services>.svc:9000``): AssumeRoleWithWebIdentity, as
  kaapanapy's get_minio_client asks it; every other request goes to moto's S3 server (a
  stand-in of its own) behind it.

Kaapana's dicom-web-filter itself runs (tests/kaapana_dwf.py).
"""

from __future__ import annotations

import gzip
import json
import ssl
import threading
import time
from copy import deepcopy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

#: How the services check a bearer token: the realm's own signature check, which the box sets
#: (tests/kaapana_dwf.py, OpenIdStandIn.verify); unset, no token is taken.
VERIFY = None


def valid_token(token: str) -> bool:
    if VERIFY is None:
        return False
    try:
        VERIFY(token)
        return True
    except Exception:  # jwt.InvalidTokenError and its kin: not a token of the realm
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # the box's log is the runs', not the services'
        pass

    def body(self) -> bytes:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return gzip.decompress(data) if self.headers.get("Content-Encoding") == "gzip" else data

    def reply(self, status: int, payload: bytes, content_type: str = "application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def token_ok(self) -> bool:
        return valid_token(self.headers.get("Authorization", "").removeprefix("Bearer "))


def forward(handler: Handler, target: str, method: str):
    data = handler.body() if method in ("POST", "PUT") else None
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "authorization", "content-length",
                                                                              "x-forwarded-access-token")}
    upstream = requests.request(method, target, data=data, headers=headers, timeout=300)
    payload = upstream.content
    passed = [(k, v) for k, v in upstream.headers.items()
              if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-type",
                                   "content-encoding")]
    handler.reply(upstream.status_code, payload, upstream.headers.get("Content-Type", "application/octet-stream"),
                  passed)


# --- STAND-IN: OpenSearch, strict -----------------------------------------------------------------


class UnsupportedQuery(ValueError):
    pass


class IndexStore:
    """Documents by index and id, as written through the REST API, with a journal of the
    writes (which request wrote what, when); saved to ``dump`` after every write."""

    def __init__(self, indices: list[str], dump: Path):
        self.indices: dict[str, dict[str, dict]] = {name: {} for name in indices}
        self.versions: dict[tuple[str, str], int] = {}
        self.journal: list[dict] = []
        self.dump = dump
        self.lock = threading.Lock()
        self.seq = 0
        self._save()

    def _save(self) -> None:
        self.dump.write_text(json.dumps({"indices": self.indices, "journal": self.journal}))

    def _written(self, op: str, index: str, doc_id: str, agent: str) -> dict:
        self.seq += 1
        version = self.versions[(index, doc_id)] = self.versions.get((index, doc_id), 0) + 1
        self.journal.append({"op": op, "index": index, "id": doc_id, "at": time.time(), "agent": agent})
        self._save()
        return {"_index": index, "_id": doc_id, "_version": version, "_seq_no": self.seq, "_primary_term": 1,
                "_shards": {"total": 2, "successful": 1, "failed": 0}}

    def put(self, index: str, doc_id: str, document: dict, agent: str) -> tuple[int, dict]:
        with self.lock:
            docs = self.indices.setdefault(index, {})  # OpenSearch creates an index on first write
            created = doc_id not in docs
            docs[doc_id] = document
            answer = self._written("index", index, doc_id, agent)
        return (201 if created else 200), {**answer, "result": "created" if created else "updated"}

    def update(self, index: str, doc_id: str, body: dict, agent: str) -> tuple[int, dict]:
        unknown = set(body) - {"doc", "doc_as_upsert", "upsert"}
        if unknown or "doc" not in body:
            raise UnsupportedQuery(f"update body {sorted(body)}")
        with self.lock:
            docs = self.indices.get(index)
            if docs is None:
                return 404, _index_missing(index)
            if doc_id not in docs:
                if body.get("doc_as_upsert"):
                    docs[doc_id] = deepcopy(body["doc"])
                    return 201, {**self._written("update", index, doc_id, agent), "result": "created"}
                return 404, _error(404, "document_missing_exception", f"[{doc_id}]: document missing", index=index)
            merged = _merge(deepcopy(docs[doc_id]), body["doc"])
            if merged == docs[doc_id]:
                return 200, {"_index": index, "_id": doc_id, "result": "noop",
                             "_version": self.versions[(index, doc_id)]}
            docs[doc_id] = merged
            return 200, {**self._written("update", index, doc_id, agent), "result": "updated"}

    def get(self, index: str, doc_id: str) -> tuple[int, dict]:
        with self.lock:
            docs = self.indices.get(index)
            if docs is None:
                return 404, _index_missing(index)
            if doc_id not in docs:
                return 404, {"_index": index, "_id": doc_id, "found": False}
            return 200, {"_index": index, "_id": doc_id, "_version": self.versions[(index, doc_id)], "_seq_no": 0,
                         "_primary_term": 1, "found": True, "_source": deepcopy(docs[doc_id])}

    def search(self, index: str, body: dict) -> tuple[int, dict]:
        unknown = set(body) - {"query", "size", "from", "_source", "sort", "search_after", "track_total_hits"}
        if unknown:
            raise UnsupportedQuery(f"search keys {sorted(unknown)}")
        with self.lock:
            docs = self.indices.get(index)
            if docs is None:
                return 404, _index_missing(index)
            query = body.get("query", {"match_all": {}})
            hits = [(doc_id, doc) for doc_id, doc in docs.items() if _matches(query, doc_id, doc)]
            hits = [(doc_id, doc, _sort_values(body.get("sort"), doc_id, doc)) for doc_id, doc in hits]
        order = _sort_order(body.get("sort"))
        hits.sort(key=lambda hit: _sort_key(hit[2], order))
        if body.get("search_after") is not None:
            after = _sort_key(list(body["search_after"]), order)
            hits = [hit for hit in hits if _sort_key(hit[2], order) > after]
        total = len(hits)
        start, size = int(body.get("from", 0)), int(body.get("size", 10))
        page = hits[start:start + size]
        return 200, {"took": 1, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                     "hits": {"total": {"value": total, "relation": "eq"}, "max_score": None,
                              "hits": [{"_index": index, "_id": doc_id, "_score": None,
                                        "_source": _source_filter(body.get("_source"), doc),
                                        **({"sort": sort} if body.get("sort") else {})}
                                       for doc_id, doc, sort in page]}}


def _error(status: int, kind: str, reason: str, **more) -> dict:
    cause = {"type": kind, "reason": reason, **more}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def _index_missing(index: str) -> dict:
    return _error(404, "index_not_found_exception", f"no such index [{index}]", index=index)


def _merge(target: dict, changes: dict) -> dict:
    """A partial update as OpenSearch applies it: objects merged key by key, other values replaced."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = deepcopy(value)
    return target


def _field(doc: dict, name: str):
    """A document's field, ``name.keyword`` being the keyword sub-field of a text field."""
    name = name.removesuffix(".keyword")
    if name in doc:
        return doc[name]
    raise KeyError(name)


def _values(doc: dict, name: str) -> list:
    try:
        value = _field(doc, name)
    except KeyError:
        return []
    return value if isinstance(value, list) else [value]


def _clauses(value) -> list:
    return value if isinstance(value, list) else [value]


def _matches(query: dict, doc_id: str, doc: dict) -> bool:
    if len(query) != 1:
        raise UnsupportedQuery(f"query {json.dumps(query)[:200]}")
    ((kind, arg),) = query.items()
    if kind == "match_all":
        return True
    if kind == "ids":
        return doc_id in arg["values"]
    if kind in ("term", "terms"):
        ((name, wanted),) = arg.items()
        if kind == "term":
            wanted = [wanted["value"] if isinstance(wanted, dict) else wanted]
        return any(value in wanted for value in _values(doc, name))
    if kind == "exists":
        return bool(_values(doc, arg["field"]))
    if kind == "bool":
        unknown = set(arg) - {"must", "filter", "must_not", "should", "minimum_should_match"}
        if unknown:
            raise UnsupportedQuery(f"bool keys {sorted(unknown)}")
        required = _clauses(arg.get("must", [])) + _clauses(arg.get("filter", []))
        should = _clauses(arg.get("should", []))
        if not all(_matches(q, doc_id, doc) for q in required):
            return False
        if any(_matches(q, doc_id, doc) for q in _clauses(arg.get("must_not", []))):
            return False
        needed = arg.get("minimum_should_match", 0 if required else (1 if should else 0))
        return sum(_matches(q, doc_id, doc) for q in should) >= int(needed)
    raise UnsupportedQuery(f"query kind {kind!r}")


def _sort_fields(sort) -> list[tuple[str, str]]:
    fields = []
    for item in _clauses(sort or []):
        if isinstance(item, str):
            fields.append((item, "asc"))
            continue
        ((name, order),) = item.items()
        fields.append((name, order["order"] if isinstance(order, dict) else order))
    return fields


def _sort_order(sort) -> list[str]:
    return [order for _, order in _sort_fields(sort)]


def _sort_values(sort, doc_id: str, doc: dict) -> list:
    values = []
    for name, _ in _sort_fields(sort):
        found = [doc_id] if name == "_id" else _values(doc, name)
        values.append(found[0] if found else None)
    return values


class _Reverse:
    def __init__(self, value):
        self.value = value

    def __lt__(self, other):
        return other.value < self.value

    def __gt__(self, other):
        return other.value > self.value

    def __eq__(self, other):
        return self.value == other.value


def _sort_key(values: list, orders: list[str]) -> tuple:
    key = []
    for value, order in zip(values, orders):
        present = (value is None, "" if value is None else value)  # missing values last, as OpenSearch sorts
        key.append(present if order == "asc" else (value is None, _Reverse("" if value is None else value)))
    return tuple(key)


def _source_filter(spec, doc: dict) -> dict | None:
    if spec is None or spec is True:
        return deepcopy(doc)
    if spec is False:
        return None
    if isinstance(spec, (str, list)):
        spec = {"includes": _clauses(spec)}
    includes, excludes = _clauses(spec.get("includes", [])), _clauses(spec.get("excludes", []))
    return {k: deepcopy(v) for k, v in doc.items() if (not includes or k in includes) and k not in excludes}


def opensearch(store: IndexStore):
    """The strict OpenSearch's request handler (HTTPS, gzip bodies, a Keycloak stand-in token)."""
    class StrictOpenSearch(Handler):
        def answer(self, status: int, payload: dict):
            self.reply(status, json.dumps(payload).encode())

        def route(self, method: str):
            if not self.token_ok():
                return self.answer(401, _error(401, "security_exception", "missing or unknown bearer token"))
            parts = [p for p in urlsplit(self.path).path.split("/") if p]
            agent = self.headers.get("User-Agent", "")
            try:
                body = json.loads(self.body() or b"{}") if method in ("POST", "PUT", "GET") else {}
                if len(parts) == 3 and parts[1] == "_doc" and method in ("PUT", "POST"):
                    return self.answer(*store.put(parts[0], parts[2], body, agent))
                if len(parts) == 3 and parts[1] == "_doc" and method == "GET":
                    return self.answer(*store.get(parts[0], parts[2]))
                if len(parts) == 3 and parts[1] == "_update" and method == "POST":
                    return self.answer(*store.update(parts[0], parts[2], body, agent))
                if len(parts) == 2 and parts[1] == "_search" and method in ("POST", "GET"):
                    return self.answer(*store.search(parts[0], body))
                raise UnsupportedQuery(f"{method} {self.path}")
            except (UnsupportedQuery, KeyError, TypeError, ValueError) as err:
                return self.answer(400, _error(400, "box_stand_in_unsupported",
                                               f"the box's strict OpenSearch does not evaluate this: {err}"))

        def do_GET(self):
            self.route("GET")

        def do_POST(self):
            self.route("POST")

        def do_PUT(self):
            self.route("PUT")
    return StrictOpenSearch



def minio(s3_url: str):
    credentials = ("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                   "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>BOXACCESSKEY</AccessKeyId>"
                   "<SecretAccessKey>box-secret-key</SecretAccessKey><SessionToken>box-session</SessionToken>"
                   "<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
                   "</AssumeRoleWithWebIdentityResponse>").encode()

    class MinIO(Handler):
        def handle_any(self, method):
            query = parse_qs(urlsplit(self.path).query)
            if query.get("Action") == ["AssumeRoleWithWebIdentity"]:
                if not valid_token(query.get("WebIdentityToken", [""])[0]):
                    return self.reply(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml")
                return self.reply(200, credentials, "application/xml")
            forward(self, s3_url.rstrip("/") + self.path, method)

        def do_GET(self):
            self.handle_any("GET")

        def do_HEAD(self):
            self.handle_any("HEAD")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_POST(self):
            self.handle_any("POST")
    return MinIO


def serve(handler, address: str, port: int, certificate: tuple[str, str] | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, port), handler)
    if certificate:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
