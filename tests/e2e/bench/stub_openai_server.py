#!/usr/bin/env python3
"""A small OpenAI-compatible streaming server that is not tandem, for `tandem bench`'s tests.

Each request streams `max_tokens` one-word chunks: the first after a TTFT drawn uniformly from
[--ttft-min, --ttft-max] seconds, the next ones each after a gap drawn from [--itl-min, --itl-max]
(seeded). It records its own timestamps per response id (the connection accepted, the request read, and
when each token chunk was written), served as JSON on GET /stub/log: the independent measurement the test
compares `tandem bench`'s figures with. Model names pick misbehaviours: `broken-json` (a malformed
event), `http-500`, `cut` (the connection closes mid-stream), `no-done` (no [DONE]).
Prints "listening on PORT" once ready.
"""
import argparse
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = {}
LOCK = threading.Lock()
COUNTER = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    args = None

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        # Each token chunk is one small write: without this, Nagle holds it until the client's
        # delayed ACK of the previous one (40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.accepted = time.monotonic()

    def do_GET(self):
        if self.path == "/stub/log":
            with LOCK:
                body = json.dumps(LOG).encode()
        elif self.path == "/v1/models":
            body = json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunk(self, payload):
        data = payload if isinstance(payload, bytes) else ("data: " + json.dumps(payload) + "\n\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        arrival = time.monotonic()  # the TTFT clock starts here, as a server's would
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions") or not body.get("stream"):
            self.send_error(400, "expected a streaming completions request")
            return
        model = body.get("model")
        if model == "http-500":
            msg = b'{"error": {"message": "the stub failed on purpose"}}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        with LOCK:
            COUNTER[0] += 1
            rid = f"stub-{COUNTER[0]}"
            rng = random.Random(self.args.seed * 1000003 + COUNTER[0])
        n = int(body.get("max_tokens", 16))
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        sent = []
        kind = "chat.completion.chunk" if chat else "text_completion"
        if chat:
            self.chunk({"id": rid, "object": kind, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        deadline = arrival + rng.uniform(self.args.ttft_min, self.args.ttft_max)
        for i in range(n):
            time.sleep(max(0.0, deadline - time.monotonic()))
            if model == "cut" and i == 2:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            if model == "broken-json" and i == 1:
                self.chunk(b"data: {this is not json\n\n")
                break
            word = f" w{i}"
            choice = {"index": 0, "delta": {"content": word}} if chat else {"index": 0, "text": word}
            # Stamped before the write: a thread descheduled right after writing would otherwise stamp
            # a token after the client already had it (seen: 3.7 ms on a loaded machine).
            sent.append(time.monotonic())
            self.chunk({"id": rid, "object": kind, "choices": [choice]})
            deadline = sent[-1] + rng.uniform(self.args.itl_min, self.args.itl_max)
        if model != "broken-json":
            self.chunk({"id": rid, "object": kind, "choices": [],
                        "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(sent),
                                  "total_tokens": len(prompt.split()) + len(sent)}})
        if model not in ("no-done", "broken-json"):
            self.chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        with LOCK:
            LOG[rid] = {"accepted": self.accepted, "arrival": arrival, "tokens": sent}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ttft-min", type=float, default=0.05)
    p.add_argument("--ttft-max", type=float, default=0.3)
    p.add_argument("--itl-min", type=float, default=0.01)
    p.add_argument("--itl-max", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    Handler.args = args
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
