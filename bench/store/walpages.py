#!/usr/bin/env python3
"""walpages.py DB - which b-tree pages each commit in DB's WAL wrote.

Reads DB-wal frame by frame (a 32-byte file header, then per frame a 24-byte
header whose first word is the page number and second the database size on a
commit frame, else 0), maps page numbers to their table or index through the
sqlite3 shell's dbstat table on a copy of the database, and prints how many
frames per commit went to each b-tree.  Pages the WAL holds but the database
file does not know yet (new pages) count as "new page".
Usage: chatli_store_append --messages 3000 --dir D --leave-wal; walpages.py D/chatli.db
"""
import collections, os, shutil, struct, subprocess, sys, tempfile

db = sys.argv[1]
wal = open(db + "-wal", "rb").read()
psz = struct.unpack(">I", wal[8:12])[0]
salts = wal[16:24]
frames, commits, cur = [], [], []
off = 32
while off + 24 + psz <= len(wal):
    pg, size = struct.unpack(">II", wal[off:off + 8])
    if wal[off + 8:off + 16] != salts:
        break  # a frame left from before the WAL was started over
    cur.append(pg)
    if size:
        commits.append(cur)
        cur = []
    off += 24 + psz
# The pages' owners as the database (with its WAL applied) has them.
tmp = tempfile.mkdtemp()
shutil.copy(db, tmp + "/x.db")
shutil.copy(db + "-wal", tmp + "/x.db-wal")
out = subprocess.run(["sqlite3", tmp + "/x.db", "SELECT pageno, name FROM dbstat"],
                     capture_output=True, text=True, check=True).stdout
owner = {int(a): b for a, b in (l.split("|", 1) for l in out.splitlines())}
shutil.rmtree(tmp)
per = collections.Counter()
for c in commits:
    for pg in set(c):
        per[owner.get(pg, "new page")] += 1
n = len(commits)
print(f"{n} commits, {sum(len(c) for c in commits)} frames "
      f"({sum(len(c) for c in commits) / max(n, 1):.2f} per commit); frames per commit by b-tree:")
for name, k in per.most_common():
    print(f"  {name:24s} {k / max(n, 1):.3f}")
