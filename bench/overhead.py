#!/usr/bin/env python3
"""Per-call latency of a no-op export, hyper-sched against a baseline,
interleaved in one run (issue 15).

    overhead.py [-n CALLS] [-b BATCH] [--raw] NAME=URL [NAME=URL ...]

One keep-alive http.client connection per server, or with --raw a plain
socket (TCP_NODELAY) that sends each request in one send (http.client sends
the headers and the body in two). Calls alternate between
the servers in batches of BATCH, so both see the same moments of a shared
machine. Prints, per server, the client-observed p50/p90/p99 in µs and, when
the answer carries them (hyper-sched), the daemon's own timings_us.total
p50/p99; then each server's p50 as a ratio of the last one named (the
baseline). A batch's first call, which follows the other server's batch and
finds this one's CPUs gone idle, is counted apart and shown last. Pin it
off the worker CPUs: taskset -c 0 bench/overhead.py ...
"""
import argparse
import http.client
import json
import socket
import sys
import time
import urllib.parse

BODY = json.dumps({"wasm_name": "fib.wasm", "export_func": "noop",
                   "params": [], "results_length": "0"}).encode()


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


class Target:
    def __init__(self, name, url, raw):
        self.name = name
        u = urllib.parse.urlsplit(url)
        self.raw = raw
        if raw:
            self.sock = socket.create_connection((u.hostname, u.port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.rfile = self.sock.makefile("rb")
            self.req = (b"POST /call HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % (u.netloc.encode(), len(BODY))) + BODY
        else:
            self.conn = http.client.HTTPConnection(u.hostname, u.port)
        self.client, self.inside = [], []
        self.first, self.first_inside = [], []  # each batch's first call

    def exchange(self):
        """One request and its answer: (status, body)."""
        if not self.raw:
            self.conn.request("POST", "/call", BODY, {"Content-Type": "application/json"})
            r = self.conn.getresponse()
            return r.status, r.read()
        self.sock.sendall(self.req)
        status = int(self.rfile.readline().split()[1])
        length = 0
        while True:
            h = self.rfile.readline()
            if h in (b"\r\n", b""):
                break
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":")[1])
        return status, self.rfile.read(length)

    def call(self, keep, first=False):
        t0 = time.perf_counter_ns()
        status, data = self.exchange()
        dt = (time.perf_counter_ns() - t0) / 1000
        if status != 200:
            sys.exit(f"{self.name}: HTTP {status}: {data[:200]!r}")
        if keep:
            client, inside = (self.first, self.first_inside) if first else (self.client, self.inside)
            client.append(dt)
            tot = json.loads(data).get("timings_us", {}).get("total")
            if tot is not None:
                inside.append(float(tot))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20000, help="measured calls per server")
    ap.add_argument("-b", type=int, default=100, help="calls per batch before switching server")
    ap.add_argument("-w", type=int, default=2000, help="warm-up calls per server, not counted")
    ap.add_argument("--raw", action="store_true", help="a plain socket, each request in one send")
    ap.add_argument("targets", nargs="+", metavar="NAME=URL")
    a = ap.parse_args()
    ts = [Target(*t.split("=", 1), a.raw) for t in a.targets]
    for t in ts:
        for _ in range(a.w):
            t.call(False)
    done = 0
    while done < a.n:
        for t in ts:
            # A batch's first call follows the other server's batch, a few
            # ms in which this one's CPUs went idle: it pays for waking
            # them (hyper-sched's wake_cost_us). It is kept apart, so that
            # the percentiles are those of calls that follow calls.
            t.call(True, first=True)
            for _ in range(min(a.b, a.n - done) - 1):
                t.call(True)
        done += a.b
    base = pct(ts[-1].client, 50)
    for t in ts:
        line = (f"{t.name:14s} client p50 {pct(t.client, 50):7.1f} p90 {pct(t.client, 90):7.1f} "
                f"p99 {pct(t.client, 99):7.1f} µs  ratio p50 {pct(t.client, 50) / base:.3f}")
        if t.inside:
            line += f"  | daemon total p50 {pct(t.inside, 50):6.1f} p99 {pct(t.inside, 99):6.1f} µs"
        line += f"  | a batch's first call: client p50 {pct(t.first, 50):7.1f} µs"
        if t.first_inside:
            line += f", daemon total p50 {pct(t.first_inside, 50):6.1f} µs"
        print(line)


if __name__ == "__main__":
    main()
