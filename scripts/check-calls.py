#!/usr/bin/env python3
"""check-calls.py - no call circle between the files of one src/ folder.

Reads the object files of a build (nm), maps every global function and
variable to the file that defines it, and draws an edge a -> b when a file
of folder F uses a symbol defined by another file of F.  A strongly
connected set of two or more files is a circle: the files cannot be read,
tested or replaced one at a time.  No folder is exempt (src/ws/ was, until
its inbox and job objects moved to ws/msgs.c, issue 9).

Usage: scripts/check-calls.py BUILD_DIR   (exit 1 when a circle is found)
"""
import collections
import pathlib
import subprocess
import sys

EXEMPT = set()


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if len(l.split()) == 3}
    out = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    used = {l.split()[-1] for l in out.splitlines() if l.strip()}
    return defined, used


def sccs(nodes, edges):
    """Tarjan's strongly connected components."""
    index, low, stack, on, res, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            res.append(comp)

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return res


def main():
    build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "build")
    objs = [o for o in build.glob("CMakeFiles/chatli*.dir/src/**/*.o")]
    if not objs:
        print(f"check-calls: no object files under {build}/CMakeFiles (build first)")
        return 1
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    by_folder = collections.defaultdict(dict)
    for o in objs:
        rel = o.as_posix().split("/src/", 1)[1][: -len(".o")]  # e.g. core/auth.c
        if not (src / rel).exists():
            continue  # an object left behind by a source file since removed
        folder = rel.split("/")[0] if "/" in rel else "."
        by_folder[folder][rel] = symbols(o)
    bad = 0
    for folder, files in sorted(by_folder.items()):
        owner = {s: f for f, (d, _) in files.items() for s in d}
        edges = {f: sorted({owner[s] for s in u if s in owner and owner[s] != f})
                 for f, (_, u) in files.items()}
        for comp in sccs(files, edges):
            if len(comp) > 1:
                tag = "exempt" if folder in EXEMPT else "circle"
                print(f"check-calls: {tag} in src/{folder}/: " + " <-> ".join(sorted(comp)))
                bad += folder not in EXEMPT
    print(f"check-calls: {sum(len(f) for f in by_folder.values())} files in "
          f"{len(by_folder)} folders, {bad} call circle(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
