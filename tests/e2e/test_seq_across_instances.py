"""One message, one seq, everywhere: with two chatli instances on one
database (FerretDB in CI, whose non-atomic $inc lets the two instances'
seq reservations collide, docs/data-model.md "FerretDB") and one Redis,
senders on both pipeline messages into one chat; then, for every message,
the seq in its sender's message.ack equals the seq of the message.new
frame each other connection got for that id (on both instances: local
delivery and through Redis) and the seq the store lists for it.

It checks the report "the sender's message.ack carried seqs (3...) while
the published message.new frames had others (30...)" by id, not by
position in a list: one sender's acks and the other sender's messages do
carry different ranges when one instance's reservation collided and was
renumbered above the other's (before anything was acked or published).
The deterministic reproduction of the collision paths is
tests/contract/test_store_mongo_seq.c; this is the end-to-end check that
nothing between the store and the client changes a seq.  No ordering or
latency bound here (test_scaleout.py covers order)."""
import uuid

import pytest

from helpers import api, assert_json, make_chat, register
from test_scaleout import eventually, pair, readyz, redis, scale  # noqa: F401 (fixtures)
from ws_fixtures import connect

pytestmark = [pytest.mark.own_server]

N = 60


@pytest.fixture
def two(pair):
    """test_scaleout's pair (two instances, one database, one Redis), once
    both see Redis."""
    for srv in pair:
        assert eventually(lambda: readyz(srv).json()["checks"]["redis"] == "ok", 10)
    return list(pair)


def new_frames(w, chat_id, n):
    """id -> seq of the n message.new frames of chat_id w gets (also those
    a recv_type() passed over), each id once."""
    got = {}
    for f in w.skipped:
        if f.get("type") == "message.new" and f["message"]["chatId"] == chat_id:
            assert f["message"]["id"] not in got, f
            got[f["message"]["id"]] = f["message"]["seq"]
    w.skipped = [f for f in w.skipped
                 if not (f.get("type") == "message.new" and f["message"]["chatId"] == chat_id)]
    while len(got) < n:
        m = w.recv_type("message.new", 20, pred=lambda f: f["message"]["chatId"] == chat_id)
        m = m["message"]
        assert m["id"] not in got, m
        got[m["id"]] = m["seq"]
    return got


@scale
def test_ack_event_and_store_agree_on_every_seq(two):
    a, b = two
    u1, t1 = register(a)
    u2, t2 = register(a)
    u3, t3 = register(a)
    chat = make_chat(a, t1, [u2["id"], u3["id"]], name="seqs")
    w1, _ = connect(a, t1)
    w2, _ = connect(b, t2)
    w3a, _ = connect(a, t3)
    w3b, _ = connect(b, t3)
    try:
        for i in range(N):
            w = w1 if i % 2 == 0 else w2
            w.send({"type": "message.send", "chatId": chat["id"], "text": "s%d" % i,
                    "clientId": "s-%d-%s" % (i, uuid.uuid4().hex[:6])})
        acks = {}
        by_sender = {}
        for w, k in ((w1, (N + 1) // 2), (w2, N // 2)):
            for _ in range(k):
                m = w.recv_type("message.ack", 20)["message"]
                assert m["id"] not in acks
                acks[m["id"]] = m["seq"]
                by_sender[m["id"]] = w
        assert len(acks) == N
        assert len(set(acks.values())) == N, sorted(acks.values())

        # Both of u3's connections get every message; each sender gets the
        # other's (its own go to the ack only).
        for w, n in ((w3a, N), (w3b, N)):
            got = new_frames(w, chat["id"], n)
            assert got == acks
        for w, other in ((w1, w2), (w2, w1)):
            theirs = {i: s for i, s in acks.items() if by_sender[i] is other}
            assert new_frames(w, chat["id"], len(theirs)) == theirs

        r = api(a, "GET", "/api/chats/%s/messages" % chat["id"], t1,
                params={"afterSeq": 0, "limit": 100})
        listed = {m["id"]: m["seq"] for m in assert_json(r, 200)["items"]}
        assert listed == acks
    finally:
        for w in (w1, w2, w3a, w3b):
            w.close()
