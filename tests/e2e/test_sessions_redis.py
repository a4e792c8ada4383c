"""Sessions in Redis (the scaling guide's "Redis for sessions"): with
REDIS_URL, a session one instance confirmed with the store is shared with
the others through Redis (token hash -> user id and expiry, with a TTL), so
a token used on instance A costs instance B one Redis round trip instead of
a store read.  Two instances on one MongoDB (FerretDB in CI) and one private
redis-server:

- B finds a session A confirmed in Redis: chatli_cache_redis_session_hits
  moves on B and B does not read the session from the store
  (chatli_store_op_duration_seconds_count{op="get_session"} stays);
- a token nobody shared yet is a Redis miss on B (the misses counter moves)
  and comes from the store;
- logout on A: B, which only ever knew the token through Redis, answers 401
  on its very next request (the revocation mark, not a TTL or the bus);
- Redis down: tokens still work on both (the store path), and the session
  counters stop moving.

Runs only on MongoDB (instances share the store: the mongo-e2e phase).
"""
import shutil
import uuid

import pytest

from conftest import STORE
from helpers import api, assert_error, assert_json, register
from test_scaleout import Redis  # noqa: F401  (the fixture's class)
from test_scaleout import redis  # noqa: F401  (pytest fixture)

pytestmark = [
    pytest.mark.own_server,
    pytest.mark.skipif(STORE != "mongo", reason="needs MONGODB_URI: instances share the store"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

SESSION_READS = 'chatli_store_op_duration_seconds_count{op="get_session"}'


def metric(srv, name):
    """The value of the sample `name` (with its labels, if any) on /metrics;
    0 when the sample is absent (a labelled series appears at first use)."""
    for line in api(srv, "GET", "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    if "{" in name:
        return 0.0
    raise AssertionError("no metric %s" % name)


@pytest.fixture
def pair(start_server, redis):  # noqa: F811
    db = "chatli_e2e_sess_" + uuid.uuid4().hex[:10]
    env = dict(REDIS_URL=redis.url, MONGODB_DB=db, RATE_LIMIT_MAX=0)
    return start_server(**env), start_server(**env)


def test_session_confirmed_on_a_is_found_in_redis_by_b(pair):
    a, b = pair
    _, t = register(a)  # the session is created; nobody has checked it yet
    misses_a = metric(a, "chatli_cache_redis_session_misses")
    assert_json(api(a, "GET", "/api/users/me", t), 200)  # A: Redis miss, store, shares it
    assert metric(a, "chatli_cache_redis_session_misses") == misses_a + 1

    hits_b = metric(b, "chatli_cache_redis_session_hits")
    reads_b = metric(b, SESSION_READS)
    me = assert_json(api(b, "GET", "/api/users/me", t), 200)
    assert metric(b, "chatli_cache_redis_session_hits") == hits_b + 1
    assert metric(b, SESSION_READS) == reads_b  # B never asked the store
    assert me["id"] == assert_json(api(a, "GET", "/api/users/me", t), 200)["id"]


def test_unshared_token_is_a_miss_then_comes_from_the_store(pair):
    a, b = pair
    _, t = register(a)
    misses_b = metric(b, "chatli_cache_redis_session_misses")
    reads_b = metric(b, SESSION_READS)
    assert_json(api(b, "GET", "/api/users/me", t), 200)
    assert metric(b, "chatli_cache_redis_session_misses") == misses_b + 1
    assert metric(b, SESSION_READS) == reads_b + 1
    # Now shared: A finds it in Redis.
    hits_a = metric(a, "chatli_cache_redis_session_hits")
    assert_json(api(a, "GET", "/api/users/me", t), 200)
    assert metric(a, "chatli_cache_redis_session_hits") == hits_a + 1


def test_logout_on_a_is_401_on_b_at_once(pair):
    a, b = pair
    _, t = register(a)
    assert_json(api(a, "GET", "/api/users/me", t), 200)  # shared in Redis by A
    # B's only knowledge of the token would come from Redis: no request on
    # B before the logout, so B's own cache and the bus play no part.
    assert api(a, "POST", "/api/auth/logout", t).status_code == 204
    assert_error(api(b, "GET", "/api/users/me", t), 401, "unauthorized")
    assert_error(api(a, "GET", "/api/users/me", t), 401, "unauthorized")
    # The next session of the same user is unaffected.
    _, t2 = register(b)
    assert_json(api(a, "GET", "/api/users/me", t2), 200)
    assert_json(api(b, "GET", "/api/users/me", t2), 200)


def test_redis_down_sessions_come_from_the_store(pair, redis):  # noqa: F811
    a, b = pair
    _, t = register(a)
    redis.kill()
    hits_b = metric(b, "chatli_cache_redis_session_hits")
    reads_b = metric(b, SESSION_READS)
    assert_json(api(b, "GET", "/api/users/me", t), 200)
    assert metric(b, SESSION_READS) == reads_b + 1
    assert metric(b, "chatli_cache_redis_session_hits") == hits_b
    # A logout while Redis is down still ends the session (store), on the
    # instance that did not handle it too once its local entry is gone:
    # here B never cached the token locally before the logout.
    _, t3 = register(a)
    assert api(a, "POST", "/api/auth/logout", t3).status_code == 204
    assert_error(api(b, "GET", "/api/users/me", t3), 401, "unauthorized")
