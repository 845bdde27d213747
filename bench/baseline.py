#!/usr/bin/env python3
"""The script a user would write instead of trailwatch: gzip + json, then check each
record's eventName against the names the bundled rules select on.

Usage: baseline.py NAMES_FILE CORPUS_DIR [--procs N]
Prints one JSON line: {"mode": "python", "threads", "files", "records", "bytes", "findings", "secs"}.
"""
import gzip
import json
import multiprocessing
import os
import sys
import time


def load_names(path):
    with open(path, encoding="utf-8") as f:
        return frozenset(line.strip() for line in f if line.strip())


NAMES = frozenset()


def init(names):
    global NAMES
    NAMES = names


def scan_file(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    doc = json.loads(data)
    records = doc.get("Records", [])
    hits = 0
    for rec in records:
        if rec.get("eventName") in NAMES:
            hits += 1
    return len(records), len(data), hits


def main():
    args = sys.argv[1:]
    procs = 1
    if "--procs" in args:
        i = args.index("--procs")
        procs = int(args[i + 1])
        del args[i : i + 2]
    names_file, corpus = args
    names = load_names(names_file)
    files = sorted(
        (os.path.join(d, n) for d, _, ns in os.walk(corpus) for n in ns if n.endswith(".json.gz")),
        key=os.path.getsize,
        reverse=True,
    )
    start = time.perf_counter()
    if procs == 1:
        init(names)
        results = [scan_file(p) for p in files]
    else:
        with multiprocessing.Pool(procs, initializer=init, initargs=(names,)) as pool:
            results = list(pool.imap_unordered(scan_file, files))
    secs = time.perf_counter() - start
    print(json.dumps({
        "mode": "python",
        "threads": procs,
        "files": len(files),
        "records": sum(r[0] for r in results),
        "bytes": sum(r[1] for r in results),
        "findings": sum(r[2] for r in results),
        "secs": secs,
    }))


if __name__ == "__main__":
    main()
