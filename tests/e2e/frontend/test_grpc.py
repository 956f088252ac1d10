"""The gRPC API (tandem.v1.Inference + grpc.health.v1.Health) with grpcio. Python stubs are
generated from proto/tandem/v1/api.proto into a temporary directory at test time."""
import importlib
import sys

import pytest

grpc = pytest.importorskip("grpc")
grpc_tools = pytest.importorskip("grpc_tools")
from grpc_tools import protoc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from conftest import MODEL_NAME, ROOT  # noqa: E402


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    out = tmp_path_factory.mktemp("stubs")
    proto_root = ROOT / "proto"
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    rc = protoc.main(["protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                      str(proto_root / "tandem/v1/api.proto")])
    assert rc == 0
    sys.path.insert(0, str(out))
    pb2 = importlib.import_module("tandem.v1.api_pb2")
    pb2_grpc = importlib.import_module("tandem.v1.api_pb2_grpc")
    return pb2, pb2_grpc


@pytest.fixture(scope="module")
def channel(server):
    ch = grpc.insecure_channel(server.grpc_target)
    grpc.channel_ready_future(ch).result(timeout=30)
    yield ch
    ch.close()


def test_health_and_list_models(api, channel):
    pb2, pb2_grpc = api
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service="tandem.v1.Inference")).status == \
        health_pb2.HealthCheckResponse.SERVING
    models = pb2_grpc.InferenceStub(channel).ListModels(pb2.ListModelsRequest(), timeout=30)
    assert [m.id for m in models.models] == [MODEL_NAME]
    assert models.models[0].max_model_len == 2048


def test_unary_and_streaming_agree(api, channel, server):
    pb2, pb2_grpc = api
    stub = pb2_grpc.InferenceStub(channel)
    req = pb2.GenerateRequest(model=MODEL_NAME, prompt="The capital of France is",
                              sampling=pb2.SamplingParams(max_tokens=8, temperature=0.0, logprobs=1))
    unary = stub.GenerateUnary(req, timeout=300)
    assert len(unary.choices) == 1
    choice = unary.choices[0]
    assert "Paris" in choice.text
    assert len(choice.token_ids) == 8 and len(choice.logprobs) == 8
    assert choice.finish_reason == pb2.FINISH_REASON_LENGTH
    assert unary.usage.completion_tokens == 8 and unary.usage.prompt_tokens > 0

    responses = list(stub.Generate(req, timeout=300))
    assert len(responses) >= 2
    assert "".join(c.text for r in responses for c in r.choices) == choice.text
    assert [t for r in responses for c in r.choices for t in c.token_ids] == list(choice.token_ids)
    assert responses[-1].choices[-1].finish_reason == pb2.FINISH_REASON_LENGTH
    assert responses[-1].usage.completion_tokens == 8

    # The same request over HTTP gives the same text.
    import requests
    http = requests.post(server.url + "/v1/completions", timeout=300, json={
        "model": MODEL_NAME, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}).json()
    assert http["choices"][0]["text"] == choice.text


def test_chat_messages_and_n(api, channel):
    pb2, pb2_grpc = api
    msgs = pb2.ChatMessages(messages=[pb2.ChatMessage(role="user", content="What is the capital of France?")])
    req = pb2.GenerateRequest(model=MODEL_NAME, messages=msgs,
                              sampling=pb2.SamplingParams(max_tokens=6, temperature=1.0, n=2, seed=5),
                              request_id="grpc-chat-1")
    r = pb2_grpc.InferenceStub(channel).GenerateUnary(req, timeout=300)
    assert r.request_id == "grpc-chat-1"
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert all(c.text for c in r.choices)


@pytest.mark.parametrize("mutate,code", [
    (lambda pb2, r: setattr(r, "model", "gpt-9"), "NOT_FOUND"),
    (lambda pb2, r: r.sampling.CopyFrom(pb2.SamplingParams(temperature=5.0)), "INVALID_ARGUMENT"),
    (lambda pb2, r: r.sampling.CopyFrom(pb2.SamplingParams(max_tokens=100000)), "INVALID_ARGUMENT"),
    (lambda pb2, r: r.ClearField("prompt"), "INVALID_ARGUMENT"),
    (lambda pb2, r: r.prompt_token_ids.ids.extend([99999999]), "INVALID_ARGUMENT"),
])
def test_errors_map_to_grpc_codes(api, channel, mutate, code):
    pb2, pb2_grpc = api
    req = pb2.GenerateRequest(model=MODEL_NAME, prompt="hi", sampling=pb2.SamplingParams(max_tokens=2))
    mutate(pb2, req)
    stub = pb2_grpc.InferenceStub(channel)
    for call in (lambda: stub.GenerateUnary(req, timeout=60), lambda: list(stub.Generate(req, timeout=60))):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == getattr(grpc.StatusCode, code), err.value.details()
        assert err.value.details()


def test_cancelled_stream_frees_the_engine(api, channel, server):
    pb2, pb2_grpc = api
    req = pb2.GenerateRequest(model=MODEL_NAME, prompt="Count:",
                              sampling=pb2.SamplingParams(max_tokens=1500, ignore_eos=True, temperature=0.0))
    call = pb2_grpc.InferenceStub(channel).Generate(req, timeout=300)
    next(call)
    call.cancel()
    import time
    # Idle for a whole second: the engine may not have taken the request yet when the frontend has
    # already dropped it (the first streamed message can precede the first engine step), so one idle
    # reading could come before the request runs and is aborted.
    deadline = time.time() + 30
    idle_since = None
    while time.time() < deadline:
        idle = server.metric("tandem_num_requests_running") == 0 and server.metric("tandem_requests_in_flight") == 0
        if not idle:
            idle_since = None
        elif idle_since is None:
            idle_since = time.time()
        elif time.time() - idle_since >= 1.0:
            break
        time.sleep(0.1)
    assert server.metric("tandem_num_requests_running") == 0
    assert server.metric("tandem_requests_in_flight") == 0
