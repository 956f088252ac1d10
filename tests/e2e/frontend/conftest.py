"""Fixtures for the frontend e2e tests: a real `tandem serve` process over the real SmolLM2 GGUF.

The binary comes from $TANDEM_BIN (ctest sets it) or build/bin/tandem; the model from
$TANDEM_SMOLLM2_GGUF or ~/.cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf. Tests skip with
the reason when either is missing.
"""
import os
import pathlib
import subprocess
import threading
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[3]
DEFAULT_MODEL = pathlib.Path.home() / ".cache/tandem/models/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2"


def tandem_bin():
    path = os.environ.get("TANDEM_BIN") or str(ROOT / "build/bin/tandem")
    if not os.path.exists(path):
        pytest.skip(f"tandem binary not found at {path} (set TANDEM_BIN)")
    return path


def model_path():
    path = os.environ.get("TANDEM_SMOLLM2_GGUF") or str(DEFAULT_MODEL)
    if not os.path.exists(path):
        pytest.skip(f"SmolLM2 GGUF not found at {path} (set TANDEM_SMOLLM2_GGUF or run scripts/setup.sh)")
    return path


class Server:
    """A `tandem serve` process on free ports; `url` is its HTTP base, `grpc_target` its gRPC address."""

    def __init__(self, extra_args=(), env=None, nofile=None):
        """`nofile`: the server's descriptor limit (RLIMIT_NOFILE, soft and hard), when given."""
        args = [tandem_bin(), "serve", "--model", model_path(), "--served-model-name", MODEL_NAME,
                "--set", "frontend.http.host=127.0.0.1", "--set", "frontend.http.port=0",
                "--set", "frontend.grpc.host=127.0.0.1", "--set", "frontend.grpc.port=0",
                "--set", "model.max_model_len=2048", "--set", "kv_cache.cpu_memory_mib=256",
                "--threads", "2", *extra_args]
        full_env = dict(os.environ)
        full_env.setdefault("TANDEM_LOG_LEVEL", "warn")
        full_env.update(env or {})
        def limit_descriptors():
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env,
                                     preexec_fn=limit_descriptors if nofile else None)
        self.log = []
        ready = threading.Event()
        self.http_port = self.grpc_port = None

        def pump():
            for line in self.proc.stdout:
                self.log.append(line)
                if line.startswith("tandem serve:") and "http port" in line:
                    words = line.split()
                    self.http_port = int(words[words.index("http") + 2].rstrip(","))
                    self.grpc_port = int(words[words.index("grpc") + 2].rstrip(","))
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.time() + 180
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("tandem serve did not start:\n" + "".join(self.log))
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        r = requests.get(self.url + "/health", timeout=30)
        assert r.status_code == 200, r.text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def metric(self, name):
        """The value of an unlabelled metric line `name VALUE` from /metrics."""
        text = requests.get(self.url + "/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()
    assert s.proc.returncode == 0, "".join(s.log)


class RawResponse:
    """One HTTP/1.x response read off a raw socket: status, lower-cased headers, body (de-chunked)."""

    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        import json
        return json.loads(self.body)


class RawConnection:
    """A raw TCP connection to the server, for what `requests` cannot send: bad framing, pipelining,
    half-closes, bytes that are not UTF-8."""

    def __init__(self, port, timeout=60):
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection; received so far: %r" % self.buf[:2000])
        self.buf += chunk

    def _take_until(self, marker):
        while marker not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, skip_interim=True):
        """The next final response (1xx interim responses are skipped)."""
        while True:
            head = self._take_until(b"\r\n\r\n").decode("latin-1")
            lines = head.split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200 and skip_interim:
                continue
            break
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._take_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._take_until(b"\r\n")
                    break
                body += self._take(size)
                self._take(2)
        else:
            body = self._take(int(headers.get("content-length", "0")))
        return RawResponse(status, headers, body)

    def closed_by_server(self, timeout=10):
        """True when the server closes the connection (EOF or reset) within `timeout`."""
        import socket
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
