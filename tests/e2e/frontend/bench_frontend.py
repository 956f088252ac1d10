"""Frontend benchmark (run by hand, not by ctest):

  .venv/bin/python tests/e2e/frontend/bench_frontend.py [--requests 400] [--concurrency 8] [--streams 1000]

Starts a real `tandem serve` over SmolLM2 (see conftest.py for TANDEM_BIN / TANDEM_SMOLLM2_GGUF) and
reports:
  1. the frontend alone: /v1/models and /tokenize round trips (no engine), p50/p99 and requests/s;
  2. short non-streaming completions (max_tokens=1): client p50/p99, requests/s, and the frontend's
     added latency per request = client latency - the generator's share, which the server reports in
     the `Server-Timing: engine;dur=MS` header (submission to the last token);
  3. how many concurrent SSE streams one frontend holds: N sockets open at once, every stream must
     end with [DONE], with the server's thread count before and during.
"""
import argparse
import http.client
import json
import os
import selectors
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from conftest import MODEL_NAME, Server  # noqa: E402


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def closed_loop(port, method, path, body, total, concurrency):
    """`total` requests over `concurrency` keep-alive connections; returns (latencies, wall seconds)."""
    latencies, added, lock = [], [], threading.Lock()
    per = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
    payload = json.dumps(body) if body is not None else None

    def worker(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        mine, mine_added = [], []
        for _ in range(n):
            t = time.perf_counter()
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            elapsed = time.perf_counter() - t
            assert r.status == 200, data
            mine.append(elapsed)
            timing = r.getheader("Server-Timing")
            if timing:
                mine_added.append(elapsed - float(timing.split("dur=")[1]) / 1e3)
        conn.close()
        with lock:
            latencies.extend(mine)
            added.extend(mine_added)

    threads = [threading.Thread(target=worker, args=(n,)) for n in per]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    closed_loop.added = added
    return latencies, time.perf_counter() - t0


def report(name, latencies, wall):
    print(f"{name:38s} n={len(latencies):5d}  p50={percentile(latencies, 50) * 1e3:8.2f} ms  "
          f"p99={percentile(latencies, 99) * 1e3:8.2f} ms  {len(latencies) / wall:8.1f} req/s")


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def hold_streams(server, n, max_tokens):
    body = json.dumps({"model": MODEL_NAME, "prompt": "Hi", "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True}).encode()
    request = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
               str(len(body)).encode() + b"\r\n\r\n" + body)
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", server.http_port))
        s.sendall(request)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        socks.append(s)
    t_open = time.perf_counter()
    buf = [b""] * n
    done = set()
    peak_open = 0
    peak_threads = threads_of(server.proc.pid)
    while len(done) < n:
        for key, _ in sel.select(timeout=1.0):
            i = key.data
            chunk = key.fileobj.recv(65536)
            buf[i] += chunk
            if b"data: [DONE]" in buf[i] or not chunk:
                done.add(i)
                sel.unregister(key.fileobj)
        peak_open = max(peak_open, n - len(done))
        peak_threads = max(peak_threads, threads_of(server.proc.pid))
        if time.perf_counter() - t_open > 1200:
            break
    ok = sum(1 for b in buf if b.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in b)
    for s in socks:
        s.close()
    return ok, time.perf_counter() - t_open, peak_threads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--stream-tokens", type=int, default=4)
    args = ap.parse_args()
    server = Server(extra_args=["--set", f"frontend.max_queued_requests={max(4096, args.streams + 16)}"])
    try:
        print(f"server pid {server.proc.pid}, {threads_of(server.proc.pid)} threads at idle, "
              f"{os.cpu_count()} CPUs on this machine")
        port = server.http_port
        closed_loop(port, "GET", "/v1/models", None, 50, 2)  # warm up
        report("GET /v1/models (frontend only)", *closed_loop(port, "GET", "/v1/models", None, args.requests * 5,
                                                              args.concurrency))
        report("POST /tokenize (frontend only)", *closed_loop(port, "POST", "/tokenize",
                                                              {"model": MODEL_NAME, "prompt": "Hello there, world"},
                                                              args.requests * 5, args.concurrency))
        body = {"model": MODEL_NAME, "prompt": "Hi", "max_tokens": 1, "temperature": 0}
        for conc in (1, args.concurrency):
            lat, wall = closed_loop(port, "POST", "/v1/completions", body, args.requests if conc > 1 else 100, conc)
            report(f"completions max_tokens=1, conc {conc}", lat, wall)
            added = closed_loop.added
            print(f"{'':38s} frontend added latency (client - Server-Timing engine): "
                  f"p50 {percentile(added, 50) * 1e3:.2f} ms, p99 {percentile(added, 99) * 1e3:.2f} ms")
        ok, wall, peak_threads = hold_streams(server, args.streams, args.stream_tokens)
        print(f"concurrent SSE streams: {ok}/{args.streams} completed with [DONE] in {wall:.1f} s; "
              f"server threads peaked at {peak_threads}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
