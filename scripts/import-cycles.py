#!/usr/bin/env python3
"""The import graph of src/ between modules (DEPTH path segments deep: 1 = the top-level modules or
folders, 2 = their files), from every `crate::` path outside unit tests, and its cycles.

    python3 scripts/import-cycles.py [src] [DEPTH] [-v]
"""
import os, re, sys, itertools
root = sys.argv[1] if len(sys.argv) > 1 else "src"
depth = int(sys.argv[2]) if len(sys.argv) > 2 else 1
def mod_of(path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == "mod": rel = rel[:-1]
    if rel in (["lib"], ["main"]): return None
    return "::".join(rel[:depth])
graph = {}
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith(".rs"): continue
        p = os.path.join(dp, f); m = mod_of(p)
        if m is None: continue
        text = open(p).read()
        # drop test modules
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
        graph.setdefault(m, set())
        for t in re.findall(r"crate::((?:[a-z_]+::)*[a-z_]+)", text):
            parts = t.split("::")
            tgt = "::".join(parts[:depth])
            # keep only known modules
            graph[m].add(tgt)
        # grouped use crate::{a, b::c}
        for grp in re.findall(r"use crate::\{([^}]*)\}", text):
            for item in grp.split(","):
                item = item.strip().split("::")[0]
                if item and item != "self": graph[m].add(item)
mods = set(graph)
for m in graph: graph[m] = {t for t in graph[m] if t in mods and t != m}
# tarjan
idx = {}; low = {}; st = []; on = set(); sccs = []; c = [0]
def sc(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in graph[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in idx: sc(v)
cyc = [sorted(s) for s in sccs if len(s) > 1]
print("modules:", len(graph), "cycles (strongly connected groups):", len(cyc))
for s in cyc: print("  ", " <-> ".join(s))
if "-v" in sys.argv:
    for m in sorted(graph): print(m, "->", ", ".join(sorted(graph[m])))
