"""Graceful drain of a cluster deployment, with real processes on loopback: etcd, `tandem frontend`,
two prefill and two decode workers registered in etcd (configs/cluster-etcd.yaml, every prompt
prefilled remotely). Checks, under load (streams in flight):
  - SIGTERM to a decode worker: it leaves etcd before it exits (while it still streams), its
    readiness (gRPC health) turns NOT_SERVING while liveness stays SERVING, a new Generate call
    sent to it directly is refused with UNAVAILABLE "worker is draining", every request in flight
    on it finishes in full, new requests are served by the other decode worker (also through a
    frontend whose static worker list still names the draining one: its load reports say
    "draining"), and it exits 0;
  - SIGTERM to a prefill worker: it leaves etcd before it exits, new requests are prefilled by the
    other one, no stream fails, and it exits 0;
  - SIGTERM to the frontend: /health says 503 "draining", a new request is refused with 503, every
    stream in flight finishes in full ([DONE]), and it exits 0.
Also, while the cluster runs, that every metric the Grafana dashboard and the autoscaling rules
query is one the frontend exports (deploy/grafana/, deploy/k8s/prometheus-adapter-rules.yaml).
Needs etcd (scripts/setup.sh installs etcd-server); skips with the reason otherwise.
"""
import json
import os
import pathlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "cluster"))
from conftest import MODEL_NAME, ROOT, model_path, tandem_bin  # noqa: E402
from test_multihost import Proc  # noqa: E402

ETCD = os.environ.get("TANDEM_ETCD", "/usr/bin/etcd")
ETCDCTL = os.environ.get("TANDEM_ETCDCTL", "/usr/bin/etcdctl")
# Far above what the drains take (a few seconds), so a slow machine never cuts a stream; the test
# takes only as long as the streams.
DRAIN_TIMEOUT_S = 90
# Long enough that a stream is still running when the signal comes (SmolLM2 on two CPU cores).
STREAM_TOKENS = 64
PROMPT = ("the river carried small boats past the old mill while children counted the clouds and a "
          "baker sang about bread ") * 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tandem-drain-")
        self.procs = []
        client, peer = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{client}"
        self.prefix = f"/tandem-drain-{os.getpid()}"
        self.etcd = self.start("etcd", [
            ETCD, "--name", "drain", "--data-dir", f"{self.dir}/etcd",
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"drain=http://127.0.0.1:{peer}"])
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(self.endpoint + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if self.etcd.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("etcd did not come up:\n" + self.etcd.log())
            time.sleep(0.2)
        self.env = {"TANDEM_CLUSTER_TOKEN": secrets.token_hex(16), "TANDEM_LOG_LEVEL": "info",
                    "UCX_WARN_UNUSED_ENV_VARS": "n"}
        self.common = ["-c", str(ROOT / "configs/cluster-etcd.yaml"), "--set", f"model.path={model_path()}",
                       "--set", f"discovery.etcd.endpoints=[{self.endpoint}]",
                       "--set", f"discovery.etcd.prefix={self.prefix}",
                       "--set", "discovery.etcd.lease_ttl_s=2",
                       "--set", "disaggregation.mode=always",
                       "--set", f"shutdown.drain_timeout_s={DRAIN_TIMEOUT_S}",
                       "--set", "kv_cache.cpu_memory_mib=256"]
        self.workers = {}
        for worker_id, role in (("prefill-0", "prefill"), ("prefill-1", "prefill"), ("decode-a", "decode"),
                                ("decode-b", "decode")):
            self.workers[worker_id] = self.start(worker_id, [
                tandem_bin(), "worker", "--role", role, *self.common, "--listen", "127.0.0.1:0",
                "--id", worker_id], self.env)
        self.addresses = {}
        for worker_id, p in self.workers.items():
            line = p.wait_for("tandem worker")
            assert "registered as " + worker_id in line, line
            self.addresses[worker_id] = line.split("listening on ")[1].split(",")[0]
        ports = ["--set", "frontend.http.host=127.0.0.1", "--set", "frontend.http.port=0",
                 "--set", "frontend.grpc.host=127.0.0.1", "--set", "frontend.grpc.port=0"]
        self.frontend = self.start("frontend", [
            tandem_bin(), "frontend", *self.common, "--served-model-name", MODEL_NAME, *ports,
            "--wait-workers", "60"], self.env)
        # A second frontend over a fixed list of the same workers (as `tandem serve` has): only the
        # workers' load reports can tell it one drains.
        listed = ", ".join(f"{{role: {w.split('-')[0]}, address: '{a}'}}" for w, a in self.addresses.items())
        self.static_frontend = self.start("static frontend", [
            tandem_bin(), "frontend", *self.common, "--served-model-name", MODEL_NAME, *ports,
            "--set", "discovery.type=static", "--set", f"discovery.workers=[{listed}]", "--no-grpc"], self.env)
        line = self.frontend.wait_for("tandem frontend:")
        self.url = "http://127.0.0.1:" + re.search(r"http port (\d+)", line).group(1)
        line = self.static_frontend.wait_for("tandem frontend:")
        self.static_url = "http://127.0.0.1:" + re.search(r"http port (\d+)", line).group(1)
        deadline = time.time() + 60
        while len(self.live_workers()) < len(self.workers):
            if time.time() > deadline:
                raise RuntimeError("the frontend never saw every worker live:\n" + self.frontend.log())
            time.sleep(0.2)

    def start(self, name, args, env=None):
        p = Proc(name, args, env)
        self.procs.append(p)
        return p

    def live_workers(self):
        """worker id -> labels of each tandem_worker_up 1 series in the frontend's /metrics."""
        live = {}
        for line in requests.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith("tandem_worker_up{") and line.endswith(" 1"):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                live[labels["worker"]] = labels
        return live

    def etcd_worker_keys(self):
        out = subprocess.run([ETCDCTL, "--endpoints", self.endpoint, "get", "--prefix", "--keys-only",
                              self.prefix + "/workers/"], env={**os.environ, "ETCDCTL_API": "3"},
                             check=True, capture_output=True, text=True).stdout
        return {line.rsplit("/", 1)[1] for line in out.split() if line}

    def close(self):
        for p in reversed(self.procs):
            p.stop(sig=9)
        shutil.rmtree(self.dir, ignore_errors=True)


class Stream:
    """A streaming completion on its own thread: its completion tokens (the final usage), its finish
    reason, whether it ended with [DONE]."""

    def __init__(self, url, max_tokens=STREAM_TOKENS):
        self.tokens = 0
        self.finish_reason = None
        self.done = False
        self.error = None
        self.first_token = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(url, max_tokens), daemon=True)
        self.thread.start()

    def _run(self, url, max_tokens):
        try:
            with requests.post(url + "/v1/completions", stream=True, timeout=120, json={
                    "model": MODEL_NAME, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0,
                    "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}) as r:
                if r.status_code != 200:
                    self.error = f"HTTP {r.status_code}: {r.text}"
                    return
                for line in r.iter_lines():
                    if not line.startswith(b"data: "):
                        continue
                    data = line[len(b"data: "):]
                    if data == b"[DONE]":
                        self.done = True
                        continue
                    chunk = json.loads(data)
                    if "error" in chunk:
                        self.error = chunk["error"]
                        continue
                    if chunk.get("usage"):
                        self.tokens = chunk["usage"]["completion_tokens"]
                    for choice in chunk["choices"]:
                        self.first_token.set()
                        if choice.get("finish_reason"):
                            self.finish_reason = choice["finish_reason"]
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = repr(e)
        finally:
            self.first_token.set()

    def wait(self):
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the stream never ended"

    def assert_complete(self):
        assert self.error is None, self.error
        assert self.done, "no [DONE]"
        assert self.finish_reason == "length", self.finish_reason


def complete(url, max_tokens=8):
    return requests.post(url + "/v1/completions", timeout=120, json={
        "model": MODEL_NAME, "prompt": "The capital of France is", "max_tokens": max_tokens, "temperature": 0})


def grpc_health(address, service):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@pytest.fixture(scope="module")
def worker_api(tmp_path_factory):
    """Python stubs of proto/tandem/v1/worker.proto, generated into a temporary directory."""
    import importlib
    from grpc_tools import protoc
    out = tmp_path_factory.mktemp("stubs")
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", str(ROOT / "proto/tandem/v1/worker.proto")])
    assert rc == 0
    sys.path.insert(0, str(out))
    return importlib.import_module("tandem.v1.worker_pb2"), importlib.import_module("tandem.v1.worker_pb2_grpc")


def direct_generate(worker_api, address, token, request_id):
    """A Generate call straight to a worker (as a frontend would send it): (status code name, details)."""
    import grpc
    pb2, pb2_grpc = worker_api
    request = pb2.WorkerGenerateRequest(request_id=request_id, prompt_token_ids=[1, 2, 3],
                                        prefill_mode=pb2.PREFILL_MODE_LOCAL,
                                        sampling=pb2.WorkerSamplingParams(n=1, max_tokens=2, temperature=0, top_p=1,
                                                                          repetition_penalty=1))
    with grpc.insecure_channel(address) as channel:
        try:
            for _ in pb2_grpc.WorkerStub(channel).Generate(request, timeout=60,
                                                          metadata=[("x-tandem-cluster-token", token)]):
                pass
        except grpc.RpcError as e:
            return e.code().name, e.details()
    return "OK", ""


def running_on(cluster, worker_id):
    for line in requests.get(cluster.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("tandem_worker_num_requests_running{") and f'worker="{worker_id}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def cluster():
    if not os.access(ETCD, os.X_OK) or not os.access(ETCDCTL, os.X_OK):
        pytest.skip(f"etcd or etcdctl not found ({ETCD}, {ETCDCTL}); scripts/setup.sh installs them")
    tandem_bin()
    model_path()
    c = Cluster()
    yield c
    c.close()


def queried_metrics(expr):
    """(metric names, label names) an expression refers to; `job` and `le` come from Prometheus."""
    names = set(re.findall(r"\b(tandem_[a-z0-9_]+)", expr))
    labels = set()
    for group in re.findall(r"\bby \(([^)]*)\)", expr):
        labels.update(l.strip() for l in group.split(","))
    labels.update(re.findall(r"[{,]\s*([a-z_]+)\s*=~?", expr))
    return names, labels - {"job", "le"}


def exported(url):
    """metric name -> label names, from a live /metrics (histograms under their _bucket names too)."""
    out = {}
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("# TYPE "):
            out.setdefault(line.split()[2], set())
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            out.setdefault(name, set()).update(re.findall(r'(\w+)="', line.split("}")[0] if "{" in line else ""))
    return out


def test_dashboard_and_autoscaling_query_exported_metrics(cluster):
    assert complete(cluster.url).status_code == 200  # so every histogram has observations
    metrics = exported(cluster.url)
    exprs = []
    dashboard = json.loads((ROOT / "deploy/grafana/tandem-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        exprs += [("dashboard: " + panel["title"], t["expr"]) for t in panel.get("targets", [])]
    rules = yaml.safe_load((ROOT / "deploy/k8s/prometheus-adapter-rules.yaml").read_text())
    for rule in yaml.safe_load(rules["data"]["config.yaml"])["externalRules"]:
        exprs += [("adapter: " + rule["name"]["as"], rule["metricsQuery"]), ("adapter", rule["seriesQuery"])]
    assert len(exprs) > 20
    for where, expr in exprs:
        names, labels = queried_metrics(expr)
        assert names, f"{where}: no tandem metric in {expr}"
        missing = sorted(n for n in names if n not in metrics)
        assert not missing, f"{where}: {missing} not exported by tandem (expr: {expr})"
        have = set().union(*(metrics[n] for n in names))
        assert labels <= have, f"{where}: labels {sorted(labels - have)} on none of {sorted(names)}"


def test_sigterm_drains_a_decode_worker(cluster, worker_api):
    streams = [Stream(cluster.url) for _ in range(6)]
    for s in streams:
        assert s.first_token.wait(60), "no first token"
    victim = max(("decode-a", "decode-b"), key=lambda w: running_on(cluster, w))
    other = "decode-b" if victim == "decode-a" else "decode-a"
    assert running_on(cluster, victim) > 0, "no stream runs on either decode worker"
    p = cluster.workers[victim]
    token = cluster.env["TANDEM_CLUSTER_TOKEN"]
    assert grpc_health(cluster.addresses[victim], "tandem.v1.Worker") == "SERVING"
    assert direct_generate(worker_api, cluster.addresses[victim], token, "direct-before") == ("OK", "")
    p.proc.terminate()
    p.wait_for("tandem worker: deregistered " + victim, timeout=10)
    # Out of discovery while it still finishes its requests.
    assert victim not in cluster.etcd_worker_keys()
    assert p.proc.poll() is None, "the worker exited before its streams could finish"
    assert grpc_health(cluster.addresses[victim], "tandem.v1.Worker") == "NOT_SERVING"
    assert grpc_health(cluster.addresses[victim], "liveness") == "SERVING"
    assert direct_generate(worker_api, cluster.addresses[victim], token, "direct-during") == \
        ("UNAVAILABLE", "worker is draining")
    # New requests go to the other decode worker (or, routed before the frontend saw the worker
    # leave, are refused by the draining one and routed again).
    for url in (cluster.url, cluster.static_url):
        for _ in range(3):
            r = complete(url)
            assert r.status_code == 200, r.text
    for s in streams:
        s.wait()
        s.assert_complete()
        assert s.tokens == STREAM_TOKENS
    assert p.proc.wait(timeout=DRAIN_TIMEOUT_S) == 0, p.log()
    assert "drained in" in p.log(), p.log()
    assert set(cluster.live_workers()) == {"prefill-0", "prefill-1", other}


def test_sigterm_drains_a_prefill_worker(cluster):
    streams = [Stream(cluster.url) for _ in range(4)]
    p = cluster.workers["prefill-1"]
    p.proc.terminate()
    p.wait_for("tandem worker: deregistered prefill-1", timeout=10)
    assert "prefill-1" not in cluster.etcd_worker_keys()
    for url in (cluster.url, cluster.static_url):  # every prompt is prefilled remotely (mode always)
        for _ in range(3):
            r = complete(url)
            assert r.status_code == 200, r.text
    for s in streams:
        s.wait()
        s.assert_complete()
        assert s.tokens == STREAM_TOKENS
    assert p.proc.wait(timeout=DRAIN_TIMEOUT_S) == 0, p.log()
    assert "drained in" in p.log(), p.log()
    live = set(cluster.live_workers())
    assert "prefill-0" in live and "prefill-1" not in live, live


def test_sigterm_drains_the_frontend(cluster):
    streams = [Stream(cluster.url) for _ in range(3)]
    for s in streams:
        assert s.first_token.wait(60), "no first token"
    cluster.frontend.proc.terminate()
    cluster.frontend.wait_for("tandem frontend: draining", timeout=10)
    health = requests.get(cluster.url + "/health", timeout=5)
    assert health.status_code == 503 and health.json()["status"] == "draining", health.text
    assert requests.get(cluster.url + "/live", timeout=5).status_code == 200
    refused = complete(cluster.url)
    assert refused.status_code == 503, refused.text
    assert refused.headers.get("Connection", "").lower() == "close"
    assert "shutting down" in refused.json()["error"]["message"]
    for s in streams:
        s.wait()
        s.assert_complete()
        assert s.tokens == STREAM_TOKENS
    assert cluster.frontend.proc.wait(timeout=DRAIN_TIMEOUT_S) == 0, cluster.frontend.log()
