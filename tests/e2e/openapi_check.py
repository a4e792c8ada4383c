"""Every HTTP response the e2e suite sees, checked against docs/openapi.yaml.

conftest.py installs `check_response` on requests.Session.send, and
helpers.py calls `check_raw` for answers read from raw sockets, so each
response a test causes is matched to its path, method and status in the
spec, and its JSON body is validated against the documented schema with
Debian's python3-jsonschema.  A mismatch is recorded; conftest.py then fails
the test that made it, with a message that names what docs/openapi.yaml
lacks (the path, the method, the status, or the field and the component).

The spec is OpenAPI 3.0, whose Schema Object is a dialect of JSON Schema;
`to_json_schema` turns it into Draft 4 (which jsonschema knows) with
OpenAPI 3.0.3's rule for `nullable`: it adds null to the types named by a
`type` in the same schema, and means nothing without one.  So a
`nullable` beside a bare `allOf`/`$ref` rejects null here exactly as strict
validators and code generators do.

Conventions the spec states in prose rather than per path (its info
description) are checked here as such:
- a path the spec does not list may only answer 404 with the NotFound
  response's body (the router's "unknown route");
- a listed path with an unlisted method may only answer 405 with the
  MethodNotAllowed response, whose Allow header names the listed methods,
  or 404 with the NotFound one when a setting turns the route off (WEB_UI=0);
- OPTIONS on any listed path is the CORS preflight: 204, no body;
- HEAD is answered like GET, without a body;
- the document's `x-transport-responses` are what any request may get
  before it reaches a route (libmicrohttpd's parser, the request-target
  check), keyed by status;
- a body sent without a Content-Type is application/octet-stream (RFC 9110
  section 8.3), so the spec must say so to allow one.

Run as a script (`python3 openapi_check.py docs/openapi.yaml`) it lints the
spec for what this checker relies on: every object a response can hold
says `additionalProperties: false`, every `nullable` has a `type` beside
it, every `required` name is a listed property, every $ref resolves,
operationIds are unique and examples are valid."""
import json
import re
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# OpenAPI-only keywords that mean nothing (or something else) to Draft 4.
OAS_ONLY = ("nullable", "discriminator", "readOnly", "writeOnly", "xml", "externalDocs",
            "example", "deprecated")
MAX_ERRORS = 5


def to_json_schema(node, name=None):
    """A deep copy of an OpenAPI 3.0 Schema Object as Draft 4 JSON Schema."""
    if isinstance(node, list):
        return [to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in OAS_ONLY or k.startswith("x-"):
            continue
        if k in ("properties", "patternProperties"):
            out[k] = {p: to_json_schema(s) for p, s in v.items()}
        else:
            out[k] = to_json_schema(v)
    if node.get("nullable") is True and "type" in node:
        out["type"] = [node["type"], "null"]
        if "enum" in node and None not in node["enum"]:
            out["enum"] = list(node["enum"]) + [None]
    if name is not None:
        out.setdefault("title", name)
    return out


def _template_re(template):
    parts = re.split(r"(\{[^}/]+\})", template)
    rx = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile("^" + rx + "$")


class Spec:
    """docs/openapi.yaml, loaded once, with the lookups the checks need."""

    def __init__(self, path=SPEC_PATH):
        self.path = Path(path)
        self.doc = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        comps = self.doc.get("components", {})
        self.root = {"components": {"schemas": {
            n: to_json_schema(s, "components/schemas/" + n)
            for n, s in comps.get("schemas", {}).items()}}}
        self.resolver = jsonschema.RefResolver("", self.root)
        # Literal segments win over templates (/api/users/me before /api/users/{id}).
        self.paths = sorted(((_template_re(t), t) for t in self.doc["paths"]),
                            key=lambda p: (p[1].count("{"), p[1]))

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ptr = node["$ref"]
            assert ptr.startswith("#/"), "only local $ref: " + ptr
            node = self.doc
            for part in ptr[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def match_path(self, path):
        for rx, template in self.paths:
            if rx.match(path):
                return template
        return None

    def operations(self, template):
        item = self.doc["paths"][template]
        return {m: item[m] for m in METHODS if m in item}

    def response(self, template, method, status):
        """(response object, where) or (None, where it should be)."""
        op = self.operations(template).get(method)
        where = "paths.%s.%s.responses" % (template, method)
        if op is None:
            return None, where
        responses = op.get("responses", {})
        for key in (str(status), "%dXX" % (status // 100), "default"):
            if key in responses:
                return self.deref(responses[key]), "%s.'%s'" % (where, key)
        return None, "%s.'%d'" % (where, status)

    def transport_response(self, status):
        where = "x-transport-responses.'%d'" % status
        r = (self.doc.get("x-transport-responses") or {}).get(str(status))
        return (self.deref(r) if r else None), where

    def component_response(self, name):
        return self.deref({"$ref": "#/components/responses/" + name}), \
            "components.responses." + name

    def validator(self, schema):
        return jsonschema.Draft4Validator(to_json_schema(schema), resolver=self.resolver)


_spec = None
_spec_lock = threading.Lock()


def spec():
    global _spec
    with _spec_lock:
        if _spec is None:
            _spec = Spec()
        return _spec


# ---------------------------------------------------------------------------
# one response

def _media(content_type):
    return (content_type or "application/octet-stream").split(";")[0].strip().lower()


def _short(text, n=160):
    return text if len(text) <= n else text[:n] + "...(%d chars)" % len(text)


def _check_headers(sp, resp_obj, where, headers):
    out = []
    for name, h in (resp_obj.get("headers") or {}).items():
        h = sp.deref(h)
        value = headers.get(name.lower())
        if value is None:
            if h.get("required"):
                out.append("header %s missing (required by %s.headers)" % (name, where))
            continue
        schema = sp.deref(h.get("schema") or {})
        if schema.get("type") == "integer":
            if not re.fullmatch(r"-?\d+", value):
                out.append("header %s: %r is not an integer (%s.headers)" % (name, value, where))
                continue
            value = int(value)
        for e in list(sp.validator(schema).iter_errors(value))[:1]:
            out.append("header %s: %s (%s.headers)" % (name, e.message, where))
    return out


def _check_body(sp, resp_obj, where, content_type, body, method):
    content = resp_obj.get("content") or {}
    media = _media(content_type)
    if method == "head" or not body:
        if not body and content and method != "head":
            return ["no body, but %s documents %s" % (where, ", ".join(content))]
        return []
    if not content:
        return ["a %s body, but %s documents none" % (media or "typeless", where)]
    if media not in content:
        return ["Content-Type %r not documented in %s.content (has %s)"
                % (content_type, where, ", ".join(content))]
    schema = content[media].get("schema")
    if media != "application/json" or schema is None:
        return []
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return ["body is not JSON (%s): %r" % (e, body[:200])]
    errors = sorted(sp.validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    out = []
    for e in errors[:MAX_ERRORS]:
        at = "/".join(str(p) for p in e.path) or "(top)"
        comp = e.schema.get("title") if isinstance(e.schema, dict) else None
        msg = e.message
        if e.context:   # oneOf/anyOf: say which branch came closest and why
            sub = jsonschema.exceptions.best_match(e.context)
            subat = "/".join(str(p) for p in sub.path)
            title = sub.schema.get("title") if isinstance(sub.schema, dict) else None
            msg = "matches none of %s's choices; closest: %s%s [%s]" % (
                comp or "the schema", "at %s: " % subat if subat else "", sub.message,
                title or "inline")
        out.append("body at %s: %s [%s, schema %s]" % (at, msg, where, comp or "inline"))
    if len(errors) > MAX_ERRORS:
        out.append("... and %d more schema errors" % (len(errors) - MAX_ERRORS))
    return out


def problems(method, url_or_path, status, headers, body):
    """The ways one response disagrees with docs/openapi.yaml (empty: none).
    `headers` maps lower-cased names to values; `body` is bytes."""
    sp = spec()
    if url_or_path.startswith("/"):   # a raw request target: "#" is not special there
        path = url_or_path.split("?", 1)[0]
    else:
        path = urlsplit(url_or_path).path or "/"
    # Methods are case-sensitive: "get" is an unknown method, not GET.
    verb = method
    method = method.lower() if method.isupper() else "?" + method
    headers = {k.lower(): v for k, v in headers.items()}
    ct = headers.get("content-type")
    found = _route_problems(sp, verb, method, path, status, headers, body)
    if found:
        transport, twhere = sp.transport_response(status)
        if transport is not None:
            also = (_check_body(sp, transport, twhere, ct, body, method)
                    + _check_headers(sp, transport, twhere, headers))
            if not also:
                return []
            found.append("nor does it match %s: %s" % (twhere, "; ".join(also)))
    return found


def _route_problems(sp, verb, method, path, status, headers, body):
    ct = headers.get("content-type")
    template = sp.match_path(path)
    if method == "options" and template is not None:
        return [] if status == 204 and not body else [
            "OPTIONS %s answered %d: the spec's convention is a 204 preflight" % (path, status)]
    if template is None:
        if status != 404:
            return ["path %s is not in docs/openapi.yaml (it answered %s %d): add it under paths"
                    % (_short(path), verb, status)]
        resp_obj, where = sp.component_response("NotFound")
        where += " (unknown route)"
        return (_check_body(sp, resp_obj, where, ct, body, method)
                + _check_headers(sp, resp_obj, where, headers))
    ops = sp.operations(template)
    look = "get" if method == "head" and "head" not in ops else method
    if look not in ops and status == 404:
        # A route a setting turns off (WEB_UI=0) is an unknown route for every method.
        resp_obj, where = sp.component_response("NotFound")
        where += " (route turned off)"
        return (_check_body(sp, resp_obj, where, ct, body, method)
                + _check_headers(sp, resp_obj, where, headers))
    if look not in ops:
        if status != 405:
            return ["%s %s is not in docs/openapi.yaml (paths.%s has %s; it answered %d)"
                    % (verb, template, template,
                       ", ".join(m.upper() for m in ops), status)]
        resp_obj, where = sp.component_response("MethodNotAllowed")
        out = (_check_body(sp, resp_obj, where, ct, body, method)
               + _check_headers(sp, resp_obj, where, headers))
        allow = {m.strip().lower() for m in headers.get("allow", "").split(",") if m.strip()}
        if not set(ops) <= allow:
            out.append("405 Allow %r lacks documented methods of paths.%s: %s"
                       % (headers.get("allow"), template, ", ".join(sorted(set(ops) - allow))))
        if allow - set(ops) - {"head", "options"}:
            out.append("405 Allow %r names methods paths.%s does not document: %s"
                       % (headers.get("allow"), template,
                          ", ".join(sorted(allow - set(ops) - {"head", "options"}))))
        return out
    resp_obj, where = sp.response(template, look, status)
    if resp_obj is None:
        return ["status %d of %s %s is not in docs/openapi.yaml: add %s"
                % (status, verb, template, where)]
    return (_check_body(sp, resp_obj, where, ct, body, method)
            + _check_headers(sp, resp_obj, where, headers))


# ---------------------------------------------------------------------------
# collecting problems for conftest.py

_lock = threading.Lock()
_found = []


def record(method, url, status, headers, body):
    found = problems(method, url, status, headers, body)
    if found:
        head = "%s %s -> %d" % (method, _short(url), status)
        with _lock:
            _found.append(head + "\n    " + "\n    ".join(found))


def take():
    """The problems recorded since the last call (and forgets them)."""
    with _lock:
        out = list(_found)
        _found.clear()
    return out


def check_response(resp, method=None):
    """For a requests.Response of a chatli server (loopback URLs only)."""
    req = resp.request
    host = urlsplit(req.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        return
    record(method or req.method, req.url, resp.status_code, dict(resp.headers), resp.content)


def check_raw(request_bytes, raw_response):
    """For a RawResponse read from a socket that sent `request_bytes`: checked
    when the request line names a method and an origin-form path and the
    response arrived whole (and is not a 101 upgrade); anything else is the
    test's own business."""
    if raw_response is None or not raw_response.complete:
        return
    if raw_response.status == 101:   # the WebSocket handshake: docs/api.md, not REST
        return
    line = request_bytes.split(b"\r\n", 1)[0].decode("latin-1", "replace").split(" ")
    if len(line) != 3 or not line[1].startswith("/") or not line[0].isalpha():
        return
    record(line[0], line[1], raw_response.status, raw_response.headers, raw_response.body)


_installed = False


def install():
    """Wraps requests.Session.send (every requests call goes through it) so
    each response is recorded.  Streamed responses are left unread."""
    global _installed
    if _installed:
        return
    import requests
    send = requests.Session.send

    def checked_send(self, request, **kw):
        resp = send(self, request, **kw)
        if not kw.get("stream"):
            check_response(resp)
        return resp

    requests.Session.send = checked_send
    _installed = True


# ---------------------------------------------------------------------------
# linting the spec (scripts/check-source.sh)

def _walk_refs(sp, node, seen, out, where):
    """Every schema reachable from `node`, each component once."""
    if isinstance(node, list):
        for i, x in enumerate(node):
            _walk_refs(sp, x, seen, out, "%s/%d" % (where, i))
        return
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            return
        seen.add(ref)
        try:
            target = sp.deref(node)
        except (KeyError, TypeError):
            out.append(("unresolved", ref, where))
            return
        _walk_refs(sp, target, seen, out, ref[2:])
        return
    out.append(("schema", node, where))
    for k in ("properties", "patternProperties"):
        for p, s in (node.get(k) or {}).items():
            _walk_refs(sp, s, seen, out, "%s/%s/%s" % (where, k, p))
    for k in ("items", "additionalProperties", "not"):
        if isinstance(node.get(k), dict):
            _walk_refs(sp, node[k], seen, out, "%s/%s" % (where, k))
    for k in ("allOf", "anyOf", "oneOf"):
        if k in node:
            _walk_refs(sp, node[k], seen, out, "%s/%s" % (where, k))


def lint(path=SPEC_PATH):
    sp = Spec(path)
    bad = []
    found = []
    seen = set()
    # every schema in the document: nullable and required rules
    for name, s in sp.doc.get("components", {}).get("schemas", {}).items():
        _walk_refs(sp, s, seen, found, "components/schemas/" + name)
    responses = []
    for st, r in (sp.doc.get("x-transport-responses") or {}).items():
        try:
            r = sp.deref(r)
        except (KeyError, TypeError):
            bad.append("x-transport-responses/%s: $ref does not resolve" % st)
            continue
        for media, c in (r.get("content") or {}).items():
            if "schema" in c:
                responses.append((c["schema"], "x-transport-responses/%s/%s" % (st, media)))
    for template, item in sp.doc["paths"].items():
        for m, op in item.items():
            if m not in METHODS:
                continue
            for st, r in (op.get("responses") or {}).items():
                r = sp.deref(r)
                for media, c in (r.get("content") or {}).items():
                    if "schema" in c:
                        responses.append((c["schema"], "paths/%s/%s/responses/%s/%s"
                                          % (template, m, st, media)))
            for p in op.get("parameters", []) + item.get("parameters", []):
                _walk_refs(sp, sp.deref(p).get("schema", {}), seen, found, "parameters")
            body = (op.get("requestBody") or {}).get("content", {})
            for media, c in body.items():
                _walk_refs(sp, c.get("schema", {}), seen, found, "requestBody")
    for kind, node, where in found:
        if kind == "unresolved":
            bad.append("%s: $ref %s does not resolve" % (where, node))
            continue
        if node.get("nullable") is True and "type" not in node:
            bad.append("%s: nullable without a type beside it means nothing in OpenAPI 3.0.3"
                       % where)
        props = node.get("properties") or {}
        for r in node.get("required") or []:
            if props and r not in props:
                bad.append("%s: required %r is not a property" % (where, r))
    # objects a response can hold must be closed
    rseen = set()
    rfound = []
    for schema, where in responses:
        _walk_refs(sp, schema, rseen, rfound, where)
    for kind, node, where in rfound:
        if kind == "schema" and (node.get("type") == "object" or "properties" in node) \
                and "additionalProperties" not in node:
            bad.append("%s: an object in a response without additionalProperties: false"
                       % where)
    # operationIds are unique (swagger-parser does not check it)
    ids = {}
    for template, item in sp.doc["paths"].items():
        for m, op in item.items():
            if m in METHODS and op.get("operationId"):
                ids.setdefault(op["operationId"], []).append("%s %s" % (m.upper(), template))
    for oid, where in ids.items():
        if len(where) > 1:
            bad.append("operationId %r is used by %s" % (oid, ", ".join(where)))
    # every example value is valid against its schema
    for name, s in sp.doc.get("components", {}).get("schemas", {}).items():
        if "example" in s:
            for e in list(sp.validator(s).iter_errors(s["example"]))[:1]:
                bad.append("components/schemas/%s: example invalid: %s" % (name, e.message))
    return list(dict.fromkeys(bad))


def main(argv):
    path = argv[1] if len(argv) > 1 else SPEC_PATH
    bad = lint(path)
    for b in bad:
        print("openapi lint: %s" % b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
