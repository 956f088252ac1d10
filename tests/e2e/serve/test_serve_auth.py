"""Workers of `tandem serve -c` take calls only with the deployment's cluster token (issue 17, 10):
serve generates one, gives it to its workers in their environment (the API keys are no longer
there) and presents it on every worker RPC; a process without it is refused (UNAUTHENTICATED)."""
import importlib
import os
import pathlib
import sys

import pytest
import requests

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")
from grpc_tools import protoc  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import MODEL_NAME, ROOT, Server  # noqa: E402
from serve_util import worker_pids  # noqa: E402

QUICKSTART = str(ROOT / "configs/quickstart.yaml")
HEADER = "x-tandem-cluster-token"


@pytest.fixture(scope="module")
def worker_api(tmp_path_factory):
    out = tmp_path_factory.mktemp("stubs")
    proto_root = ROOT / "proto"
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    rc = protoc.main(["protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                      str(proto_root / "tandem/v1/worker.proto")])
    assert rc == 0
    sys.path.insert(0, str(out))
    return importlib.import_module("tandem.v1.worker_pb2"), importlib.import_module("tandem.v1.worker_pb2_grpc")


@pytest.fixture(scope="module")
def served():
    env = {"TANDEM_API_KEYS": "sk-e2e-auth"}
    os.environ.pop("TANDEM_CLUSTER_TOKEN", None)
    s = Server(extra_args=["-c", QUICKSTART], env=env)
    yield s
    s.stop()


def environment(pid):
    raw = pathlib.Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def listen_address(pid):
    argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return argv[argv.index("--listen") + 1]


def test_workers_get_a_cluster_token_and_not_the_api_keys(served):
    tokens = set()
    for role in ("prefill", "decode"):
        [pid] = worker_pids(served, role)
        env = environment(pid)
        assert "TANDEM_API_KEYS" not in env, role
        assert len(env.get("TANDEM_CLUSTER_TOKEN", "")) == 64, role
        tokens.add(env["TANDEM_CLUSTER_TOKEN"])
    assert len(tokens) == 1
    # The frontend presents it: requests are served.
    r = requests.post(served.url + "/v1/completions", timeout=120, headers={"Authorization": "Bearer sk-e2e-auth"},
                      json={"model": MODEL_NAME, "prompt": "Hello", "max_tokens": 2})
    assert r.status_code == 200, r.text


def test_worker_rpcs_without_the_token_are_refused(served, worker_api):
    # Issue 17 (10): any process reaching a worker's port got tokens from Worker.Generate, and
    # GetInfo handed out the KV transport address, while the frontend required API keys.
    pb2, pb2_grpc = worker_api
    [pid] = worker_pids(served, "decode")
    token = environment(pid)["TANDEM_CLUSTER_TOKEN"]
    with grpc.insecure_channel(listen_address(pid)) as channel:
        stub = pb2_grpc.WorkerStub(channel)
        for metadata in ((), ((HEADER, "not-the-token"),), ((HEADER, token[:-1]),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.GetInfo(pb2.WorkerInfoRequest(), timeout=10, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                request = pb2.WorkerGenerateRequest(request_id="intruder", prompt_token_ids=[1, 2, 3])
                request.sampling.max_tokens = 2
                request.sampling.n = 1
                list(stub.Generate(request, timeout=10, metadata=metadata))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                next(iter(stub.StreamLoad(pb2.LoadRequest(interval_ms=100), timeout=10, metadata=metadata)))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        info = stub.GetInfo(pb2.WorkerInfoRequest(), timeout=10, metadata=((HEADER, token),))
        assert info.role == "decode"
