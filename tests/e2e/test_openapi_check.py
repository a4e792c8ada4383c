"""The response check itself (openapi_check.py): it must reject what
docs/openapi.yaml does not describe, or the suite's green means nothing.
No server: responses are made up here and judged against the real spec."""
import json

import yaml

import openapi_check
from openapi_check import Spec, problems

JSON = {"Content-Type": "application/json; charset=utf-8", "X-Request-Id": "0123456789abcdef"}
AUTHOR = {"id": "a" * 24, "username": "ann", "displayName": "Ann", "avatarUrl": None}
POST = {"id": "b" * 24, "author": AUTHOR, "text": "hi", "imageUrl": None, "likeCount": 0,
        "commentCount": 0, "likedByMe": False, "createdAt": "2026-12-01T10:00:00.000Z",
        "editedAt": None}
CHAT = {"id": "c" * 24, "type": "direct", "name": None, "members": [AUTHOR],
        "lastMessage": None, "unreadCount": 0, "lastSeq": 0,
        "createdAt": "2026-12-01T10:00:00.000Z", "updatedAt": "2026-12-01T10:00:00.000Z",
        "readMarks": {"a" * 24: 0}}


def body(obj):
    return json.dumps(obj).encode()


def test_documented_responses_pass():
    assert problems("GET", "/api/posts/" + "b" * 24, 200, JSON, body(POST)) == []
    assert problems("POST", "/api/chats", 201, JSON, body(CHAT)) == []
    page = {"items": [POST], "nextCursor": None}
    assert problems("GET", "/api/posts?limit=1", 200, JSON, body(page)) == []
    err = {"error": {"code": "not_found", "message": "no such route"}}
    assert problems("GET", "/nowhere", 404, JSON, body(err)) == []


def test_a_field_the_spec_lacks_fails_naming_it():
    found = problems("GET", "/api/posts/" + "b" * 24, 200, JSON, body(dict(POST, extra=1)))
    assert len(found) == 1 and "'extra' was unexpected" in found[0], found
    assert "components/schemas/Post" in found[0], found


def test_a_mistyped_nullable_fails():
    found = problems("GET", "/api/posts/" + "b" * 24, 200, JSON, body(dict(POST, text=None)))
    assert found and "None is not of type 'string'" in found[0], found
    nested = dict(CHAT, members=[dict(AUTHOR, username=None)])
    assert problems("POST", "/api/chats", 201, JSON, body(nested))


def test_nullable_without_type_rejects_null(tmp_path):
    """The construct issue 13 names: allOf + nullable, no type."""
    doc = yaml.safe_load(openapi_check.SPEC_PATH.read_text(encoding="utf-8"))
    doc["components"]["schemas"]["Chat"]["properties"]["lastMessage"] = {
        "allOf": [{"$ref": "#/components/schemas/Message"}], "nullable": True}
    p = tmp_path / "openapi.yaml"
    p.write_text(yaml.safe_dump(doc), encoding="utf-8")
    sp = Spec(p)
    schema = sp.doc["components"]["schemas"]["Chat"]
    assert list(sp.validator(schema).iter_errors(CHAT)), "null accepted by allOf+nullable"
    assert any("nullable without a type" in b for b in openapi_check.lint(p))


def test_error_field_only_and_always_for_validation_failed():
    def err(**e):
        return body({"error": dict({"message": "m"}, **e)})
    assert problems("GET", "/api/users?q=", 422, JSON, err(code="validation_failed",
                                                           field="q")) == []
    found = problems("GET", "/api/users?q=", 422, JSON, err(code="validation_failed"))
    assert found and "'field' is a required property" in found[0], found
    assert problems("GET", "/api/users/me", 401, JSON, err(code="unauthorized", field="q"))
    assert problems("GET", "/api/users/me", 401, JSON, err(code="no_such_code"))


def test_undocumented_path_method_status_are_named():
    found = problems("POST", "/api/uploads2", 201, JSON, body({}))
    assert found and "path /api/uploads2 is not in docs/openapi.yaml" in found[0], found
    found = problems("PUT", "/api/posts", 200, JSON, body({}))
    assert found and "PUT /api/posts is not in docs/openapi.yaml" in found[0], found
    found = problems("GET", "/api/posts", 418, JSON, body({}))
    assert found and "paths./api/posts.get.responses.'418'" in found[0], found


def test_wrong_content_type_and_missing_body_fail():
    found = problems("GET", "/api/posts/" + "b" * 24, 200, {"Content-Type": "text/plain"},
                     b"hello")
    assert found and "Content-Type 'text/plain' not documented" in found[0], found
    assert problems("GET", "/api/posts/" + "b" * 24, 200, JSON, b"")


def test_405_allow_must_match_the_documented_methods():
    err = body({"error": {"code": "method_not_allowed", "message": "no"}})
    ok = dict(JSON, Allow="GET, POST")
    assert problems("PUT", "/api/posts", 405, ok, err) == []
    found = problems("PUT", "/api/posts", 405, dict(JSON, Allow="GET"), err)
    assert found and "lacks documented methods" in found[0], found
    found = problems("PUT", "/api/posts", 405, JSON, err)
    assert any("header Allow missing" in f for f in found), found


def test_headers_are_checked():
    bad = dict(JSON, **{"X-Request-Id": "not-hex"})
    found = problems("GET", "/api/posts/" + "b" * 24, 200, bad, body(POST))
    assert found and "header X-Request-Id" in found[0], found
    found = problems("GET", "/api/posts/" + "b" * 24, 200,
                     {"Content-Type": "application/json"}, body(POST))
    assert found and "header X-Request-Id missing" in found[0], found
    limited = body({"error": {"code": "rate_limited", "message": "slow down"}})
    assert problems("GET", "/api/posts", 429, dict(JSON, **{"Retry-After": "3"}), limited) == []
    found = problems("GET", "/api/posts", 429, JSON, limited)
    assert found and "header Retry-After missing" in found[0], found


def test_the_spec_passes_its_lint():
    assert openapi_check.lint() == []
