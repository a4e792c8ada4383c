"""Seeding and checking for bench/http/run.sh (run with /usr/bin/python3).

  seed.py seed  BASE --posts N   register two users, N posts by the first, a
                                 direct chat between them; prints shell
                                 assignments (TOKEN, TOKEN_B, USER_ID, CHAT_ID)
  seed.py count-messages BASE TOKEN CHAT_ID
                                 pages the chat oldest first with afterSeq and
                                 prints how many messages are stored
  seed.py count-posts BASE TOKEN AUTHOR_ID
                                 pages the feed filtered by author and prints
                                 how many posts are stored

Counting goes through the public API (the benchmark knows nothing of the
store's schema) and fails loudly on a repeated id, a seq out of order, or a
status other than 200.
"""
import secrets
import sys

import requests


def die(msg):
    print("seed.py: " + msg, file=sys.stderr)
    sys.exit(1)


def call(s, method, url, want, **kw):
    r = s.request(method, url, timeout=30, **kw)
    if r.status_code not in want:
        die("%s %s -> %d %s" % (method, url, r.status_code, r.text[:300]))
    return r.json() if r.content else None


def register(s, base, tag, who):
    name = "hb%s_%s" % (tag, who)
    body = {"username": name, "email": name + "@bench.test", "password": "bench-password-1"}
    j = call(s, "POST", base + "/api/auth/register", (201,), json=body)
    return j["user"]["id"], j["token"]


def seed(base, posts):
    s = requests.Session()
    tag = secrets.token_hex(4)
    a_id, a_tok = register(s, base, tag, "a")
    b_id, b_tok = register(s, base, tag, "b")
    h = {"Authorization": "Bearer " + a_tok}
    for i in range(posts):
        call(s, "POST", base + "/api/posts", (201,), headers=h,
             json={"text": "seeded post %d: a line of text of a typical length for a social feed" % i})
    chat = call(s, "POST", base + "/api/chats", (200, 201), headers=h, json={"memberIds": [b_id]})
    print("TOKEN=%s\nTOKEN_B=%s\nUSER_ID=%s\nUSER_B=%s\nCHAT_ID=%s" % (a_tok, b_tok, a_id, b_id, chat["id"]))


def count_messages(base, token, chat):
    s = requests.Session()
    h = {"Authorization": "Bearer " + token}
    after, n, last_seq, ids = "0", 0, 0, set()
    while after is not None:
        j = call(s, "GET", "%s/api/chats/%s/messages" % (base, chat), (200,), headers=h,
                 params={"afterSeq": after, "limit": 100})
        for m in j["items"]:
            if m["seq"] <= last_seq:
                die("seq %d after %d" % (m["seq"], last_seq))
            if m["id"] in ids:
                die("message %s listed twice" % m["id"])
            ids.add(m["id"])
            last_seq = m["seq"]
            n += 1
        after = j["nextCursor"]
    print(n)


def count_posts(base, token, author):
    s = requests.Session()
    h = {"Authorization": "Bearer " + token}
    params = {"author": author, "limit": 100}
    n, ids = 0, set()
    while True:
        j = call(s, "GET", base + "/api/posts", (200,), headers=h, params=params)
        for p in j["items"]:
            if p["id"] in ids:
                die("post %s listed twice" % p["id"])
            ids.add(p["id"])
            n += 1
        if j["nextCursor"] is None:
            break
        params["before"] = j["nextCursor"]
    print(n)


def main(argv):
    if len(argv) >= 3 and argv[1] == "seed":
        posts = int(argv[4]) if len(argv) >= 5 and argv[3] == "--posts" else 200
        seed(argv[2], posts)
    elif len(argv) == 5 and argv[1] == "count-messages":
        count_messages(argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[1] == "count-posts":
        count_posts(argv[2], argv[3], argv[4])
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv)
