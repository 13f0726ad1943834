#!/usr/bin/env python3
"""Splits a fixed-rate oha run's latency into where it was spent (OHA_DB=1 in run.sh).

oha --latency-correction measures each request from the moment the rate schedule
wanted it sent. Its per-request database (--db-url) keeps that moment, the moment the
request was really sent and the moment the answer was read, so each latency splits into
  wait:    scheduled -> sent  (no free connection in oha, or oha itself was late)
  service: sent -> answered   (the proxy, the upstream and the sockets between)
and the slow requests can be told apart: a few slow calls, or a burst in which every
request in a short window was slow (a pause of the whole machine or of one process).

    oha_tail.py run.db [label]
"""
import sqlite3
import sys


def pct(sorted_values, p):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def main():
    db = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else db
    rows = sqlite3.connect(db).execute(
        "select coalesce(start_latency_correction, start), start, end from oha where status between 200 and 299"
    ).fetchall()
    if not rows:
        sys.exit(f"{db}: no successful request recorded")
    total = sorted(e - s for s, _, e in rows)
    wait = sorted(st - s for s, st, _ in rows)
    service = sorted(e - st for _, st, e in rows)
    us = lambda v: f"{v * 1e6:,.0f}"
    print(f"{label}: {len(rows)} requests")
    print(f"  {'':8} {'p50':>9} {'p99':>9} {'p99.9':>9} {'max':>9}  (µs)")
    for name, values in (("total", total), ("wait", wait), ("service", service)):
        print(f"  {name:8} {us(pct(values, 50)):>9} {us(pct(values, 99)):>9} {us(pct(values, 99.9)):>9} {us(values[-1]):>9}")
    # The requests slower than p99 in total, grouped into 10 ms windows of their scheduled
    # start: how many windows they fall in, and the worst windows.
    p99 = pct(total, 99)
    slow = sorted((s, e - s, st - s) for s, st, e in rows if e - s >= p99)
    windows = {}
    for s, t, w in slow:
        windows.setdefault(int(s * 100), []).append((t, w))
    print(f"  requests at or over p99 ({us(p99)} µs): {len(slow)} in {len(windows)} windows of 10 ms")
    worst = sorted(windows.items(), key=lambda kv: -max(t for t, _ in kv[1]))[:5]
    for w, items in worst:
        t_max = max(t for t, _ in items)
        w_max = max(w for _, w in items)
        print(f"    at {w / 100:7.2f} s: {len(items):4} requests, worst {us(t_max)} µs total, of which up to {us(w_max)} µs waiting to be sent")


if __name__ == "__main__":
    main()
