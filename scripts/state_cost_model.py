#!/usr/bin/env python3
"""DynamoDB write units spent on the two ratio correlations' state, per million records.

    state_cost_model.py --trailwatch target/release/trailwatch CORPUS_DIR

A ratio correlation counts every call of a principal over a UTC day: its state item
(`STATE#ratio-<hash>#<group>`, `sk` = day) holds the 12-character hashes of up to 2,000
calls in the set `d` (all calls) and one numerator set `n_<hash>` per ratio. DynamoDB bills an `UpdateItem` by
the larger of the item's size before and after it (1 write unit per KB, rounded up; a
refused conditional update is billed too), so the cost grows with busy principals.

Which record feeds which ratio is asked of trailwatch itself: the script scans the corpus
with only the bundled building blocks (`rules/correlations/base`), which then report every
match as a finding, and reads event ids, principals, times and files from the JSONL. It then
replays the two delivery paths:

- log-processor: files in delivery order (the time in their names), one update per (item,
  principal, day) a flush touched, at most 100 members per update; flushed once per object
  (before 2026-12-07 evening) or once per invocation of `--batch` objects (an SQS batch:
  the template's default BatchSize is 10); in both layouts: one item per ratio (before
  2026-12-07) and one item shared by the ratios that count the same calls (`d` once, a
  numerator set per ratio: the current one);
- event-handler (as it was before it left ratios to the log-processor): one update per
  ratio per write event, with the items holding every call (both paths write them).

Prices: on-demand $0.625 per million write request units, $0.125 per million read request
units (us-east-1, November 2026).
"""

import argparse
import collections
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

RATIOS = {
    # correlation -> (numerator building block, denominator building block)
    "tw-corr-enumeration-ratio": ("tw-base-enumeration-call", "tw-base-principal-activity"),
    "tw-corr-privilege-escalation-ratio": ("tw-base-privesc-call", "tw-base-principal-activity"),
}
CAP = 2000
MEMBERS_PER_UPDATE = 100
PRICE_PER_WRU = 0.625 / 1e6
PRICE_PER_RRU = 0.125 / 1e6


def item_bytes(d, n, group):
    """Attribute names + values: pk (~70), sk, correlation, group, bucket, expires_at, sets."""
    return 2 + 70 + 2 + 10 + 11 + 36 + 5 + len(group) + 6 + 10 + 10 + 10 + 2 + 12 * (d + n)


def wru(before, after):
    return math.ceil(max(before, after) / 1024)


def matches(trailwatch, corpus, repo):
    """(file, event id, time, principal, read_only?) -> set of building blocks matched."""
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base")
        shutil.copytree(os.path.join(repo, "rules", "correlations", "base"), base)
        out = subprocess.run(
            [trailwatch, "scan", "--threads", "1", "--format", "jsonl", "--rules", base, corpus],
            capture_output=True, text=True, check=False)
        if out.returncode not in (0, 1):
            sys.exit(f"trailwatch scan failed ({out.returncode}): {out.stderr.strip()}")
    events = collections.defaultdict(set)
    for line in out.stdout.splitlines():
        f = json.loads(line)
        if f.get("principal"):
            key = (os.path.basename(f["source"]), f["event_id"], f["event_time"], f["principal"])
            events[key].add(f["rule_id"])
    return events


def delivery_order(name):
    """CloudTrail names end `_<region>_<YYYYMMDDTHHMMZ>_<unique>.json.gz`: by time, then name."""
    parts = name.split("_")
    return (parts[-2] if len(parts) >= 3 else "", name)


def replay(by_file, shared, per_flush=1):
    """Files in delivery order, one flush per `per_flush` files; (items, updates, units)."""
    items = {}
    updates = units = 0
    order = sorted(by_file, key=delivery_order)
    for first in range(0, len(order), per_flush):
        pending = collections.defaultdict(lambda: ({}, []))
        for src in order[first:first + per_flush]:
            for eid, t, who, rules in by_file[src]:
                for corr, (num, den) in RATIOS.items():
                    if den in rules:
                        calls, _ = pending[("ratios" if shared else corr, who, t[:10])]
                        calls.setdefault(eid, 0)
                        if num in rules:
                            calls[eid] += 1
        for key, (calls, _) in pending.items():
            n, u = write(items.setdefault(key, [set(), 0]), calls, list(calls), key[1], CAP)
            updates += n
            units += u
    return items, updates, units


def write(it, calls, eids, group, cap):
    """Add the calls `eids` (numerator counts in `calls`) to item `it` = [members, numerator
    count], at most 100 members per update, refused once it holds `cap`: (updates, units)."""
    updates = units = 0
    new = sorted(set(eids) - it[0])
    for i in range(0, max(len(new), 1), MEMBERS_PER_UPDATE):
        before = item_bytes(len(it[0]), it[1], group)
        updates += 1
        if len(it[0]) >= cap:
            units += wru(before, before)
            break
        chunk = new[i:i + MEMBERS_PER_UPDATE]
        it[0].update(chunk)
        it[1] += sum(calls[e] for e in chunk)
        units += wru(before, item_bytes(len(it[0]), it[1], group))
    return updates, units


def replay_sharded(by_file, shards, per_flush):
    """As `replay` (one item for both ratios), each (principal, day) split into `shards` items
    by event hash, each holding its share of the calls and the cap; a flush updates only the
    shards its calls fall in and reads the totals with one strongly consistent Query of the
    principal's day (billed by the bytes returned: 1 read unit per 4 KB). A layout not built:
    what it would save. Returns (updates, write units, reads, read units)."""
    items = {}
    updates = units = reads = read_units = 0
    order = sorted(by_file, key=delivery_order)
    for first in range(0, len(order), per_flush):
        pending = collections.defaultdict(dict)
        for src in order[first:first + per_flush]:
            for eid, t, who, rules in by_file[src]:
                for corr, (num, den) in RATIOS.items():
                    if den in rules:
                        calls = pending[(who, t[:10])]
                        calls.setdefault(eid, 0)
                        if num in rules:
                            calls[eid] += 1
        for key, calls in pending.items():
            by_shard = collections.defaultdict(list)
            for eid in calls:
                by_shard[int(hashlib.sha256(eid.encode()).hexdigest()[:8], 16) % shards].append(eid)
            day = items.setdefault(key, {})
            for shard, eids in by_shard.items():
                it = day.setdefault(shard, [set(), 0])
                n, u = write(it, calls, eids, key[0], math.ceil(CAP / shards))
                updates += n
                units += u
            total = sum(item_bytes(len(v[0]), v[1], key[0]) for v in day.values())
            reads += 1
            read_units += math.ceil(total / 4096)
    return updates, units, reads, read_units


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trailwatch", default="target/release/trailwatch")
    ap.add_argument("--batch", type=int, default=10,
                    help="objects per log-processor invocation (SQS BatchSize), default 10")
    ap.add_argument("--shards", type=int, default=0,
                    help="also model the ratio items split into this many shards (not built)")
    ap.add_argument("corpus")
    args = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    records = int(json.load(open(args.corpus.rstrip("/") + ".manifest.json"))["totals"]["records"]) \
        if os.path.exists(args.corpus.rstrip("/") + ".manifest.json") else None
    events = matches(args.trailwatch, args.corpus, repo)
    if records is None:
        sys.exit("needs the generator's manifest (CORPUS.manifest.json) for the record count")

    # log-processor: per object, per (item, principal, day)
    by_file = collections.defaultdict(list)
    for (src, eid, t, who), rules in events.items():
        by_file[src].append((eid, t, who, rules))
    per_m = 1e6 / records
    print(f"corpus: {records:,} records, {len(by_file)} files with ratio input")
    rows = (
        (False, 1, "one item per ratio, one flush per object (before 2026-12-07)"),
        (True, 1, "one item for both ratios (d once), one flush per object"),
        (True, args.batch, f"one item for both ratios, one flush per {args.batch} objects (SQS batch)"),
    )
    for shared, per_flush, layout in rows:
        items, updates, units = replay(by_file, shared, per_flush)
        print(f"log-processor, {layout}: {len(items):,} items, {updates:,} updates, {units:,} WRU = "
              f"{updates * per_m:,.0f} updates, {units * per_m:,.0f} WRU, "
              f"${units * per_m * PRICE_PER_WRU:.2f} per million records")

    if args.shards > 1:
        updates, units, reads, read_units = replay_sharded(by_file, args.shards, args.batch)
        cost = units * PRICE_PER_WRU + read_units * PRICE_PER_RRU
        print(f"log-processor, {args.shards} shards per principal and day (not built), one flush per "
              f"{args.batch} objects: {updates * per_m:,.0f} updates, {units * per_m:,.0f} WRU, "
              f"{reads * per_m:,.0f} Query, {read_units * per_m:,.0f} RRU = "
              f"${cost * per_m:.2f} per million records")

    # event-handler before it left the ratios out: one update per ratio per delivered call,
    # the items holding every call (the log path writes them too); EventBridge delivers the
    # write calls by default, whose items are as large as anyone's: the units per call apply
    seen = collections.defaultdict(lambda: [0, 0])
    eh_units = eh_updates = 0
    for (src, eid, t, who), rules in sorted(events.items(), key=lambda kv: kv[0][2]):
        for corr, (num, den) in RATIOS.items():
            if den in rules:
                it = seen[(corr, who, t[:10])]
                before = item_bytes(it[0], it[1], who)
                if it[0] < CAP:
                    it[0] += 1
                    it[1] += num in rules
                eh_updates += 1
                eh_units += wru(before, item_bytes(it[0], it[1], who))
    calls = sum(1 for rules in events.values() if "tw-base-principal-activity" in rules)
    print(f"event-handler with ratios, every call delivered: {eh_updates:,} updates, {eh_units:,} WRU = "
          f"{eh_units / max(calls, 1):.1f} WRU per call, ${eh_units / max(calls, 1) * 1e6 * PRICE_PER_WRU:.2f} "
          f"per million calls")


if __name__ == "__main__":
    main()
