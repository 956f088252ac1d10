"""The official `openai` client against the real server over the real SmolLM2 GGUF: chat and
completions, streaming and not, n > 1, stop, seed reproducibility, logprobs, usage."""
import openai
import pytest
import requests

from conftest import MODEL_NAME

M = MODEL_NAME
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_models_health_metrics(server, client):
    models = client.models.list()
    assert [m.id for m in models.data] == [M]
    assert client.models.retrieve(M).id == M
    assert requests.get(server.url + "/health", timeout=10).json() == {"status": "ok"}
    text = requests.get(server.url + "/metrics", timeout=10).text
    assert "# TYPE tandem_time_to_first_token_seconds histogram" in text
    assert "tandem_kv_blocks_total" in text


def test_chat_greedy(client):
    r = client.chat.completions.create(model=M, messages=QUESTION, max_tokens=12, temperature=0)
    assert r.object == "chat.completion"
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.message.role == "assistant"
    assert "Paris" in c.message.content
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 10
    assert 0 < r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_matches_non_streaming(client):
    full = client.chat.completions.create(model=M, messages=QUESTION, max_tokens=10, temperature=0)
    stream = client.chat.completions.create(model=M, messages=QUESTION, max_tokens=10, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert text == full.choices[0].message.content
    assert finishes == [full.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_completions_non_streaming_and_streaming(client):
    r = client.completions.create(model=M, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.object == "text_completion"
    assert "Paris" in r.choices[0].text
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 8
    pieces = list(client.completions.create(model=M, prompt="The capital of France is", max_tokens=8, temperature=0,
                                            stream=True))
    assert "".join(p.choices[0].text for p in pieces) == r.choices[0].text
    assert pieces[-1].choices[0].finish_reason == "length"


def test_completions_token_ids_and_prompt_list(client):
    ids = client.completions.create(model=M, prompt=[504, 3575, 282, 4649, 314], max_tokens=4, temperature=0)
    assert ids.usage.prompt_tokens == 5
    many = client.completions.create(model=M, prompt=["One, two,", "Red, green,"], max_tokens=4, temperature=0)
    assert [c.index for c in many.choices] == [0, 1]
    single = client.completions.create(model=M, prompt="Red, green,", max_tokens=4, temperature=0)
    assert many.choices[1].text == single.choices[0].text


def test_n_greater_than_one(client):
    r = client.chat.completions.create(model=M, messages=QUESTION, max_tokens=8, temperature=1.0, n=3, seed=7)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    assert all(c.message.content for c in r.choices)
    assert 3 <= r.usage.completion_tokens <= 24  # summed over the three choices
    assert len({c.message.content for c in r.choices}) > 1  # sampled independently
    stream = client.completions.create(model=M, prompt="Once upon a time", max_tokens=6, n=2, temperature=1.0,
                                       seed=3, stream=True)
    texts = {0: "", 1: ""}
    finished = set()
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] += c.text
            if c.finish_reason:
                finished.add(c.index)
    assert finished == {0, 1} and all(texts.values())


def test_stop_strings(client):
    base = client.completions.create(model=M, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0)
    text = base.choices[0].text
    assert "," in text
    stop_at = text.index(",", 1) if text.startswith(",") else text.index(",")
    r = client.completions.create(model=M, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=[","])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == text[:stop_at]
    assert "," not in r.choices[0].text
    streamed = "".join(p.choices[0].text for p in client.completions.create(
        model=M, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=[","], stream=True))
    assert streamed == r.choices[0].text


def test_seed_reproducibility(client):
    kwargs = dict(model=M, prompt="Write a word:", max_tokens=10, temperature=1.0, top_p=0.95)
    a = client.completions.create(seed=1234, **kwargs).choices[0].text
    b = client.completions.create(seed=1234, **kwargs).choices[0].text
    assert a == b
    others = {client.completions.create(seed=s, **kwargs).choices[0].text for s in (1, 2, 3)}
    assert len(others | {a}) > 1  # different seeds do sample differently


def test_chat_logprobs(client):
    r = client.chat.completions.create(model=M, messages=QUESTION, max_tokens=5, temperature=0, logprobs=True,
                                       top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-5)
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token


def test_completion_logprobs(client):
    r = client.completions.create(model=M, prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4
    assert "".join(lp.tokens) == r.choices[0].text
    assert all(len(t) == 2 for t in lp.top_logprobs)
    assert lp.text_offset[0] == 0


def test_tokenize_detokenize(server):
    t = requests.post(server.url + "/tokenize", json={"model": M, "prompt": "Hello world"}, timeout=10).json()
    assert t["count"] == len(t["tokens"]) > 0
    d = requests.post(server.url + "/detokenize", json={"model": M, "tokens": t["tokens"]}, timeout=10).json()
    assert d["prompt"].endswith("Hello world")
    chat = requests.post(server.url + "/tokenize", json={"model": M, "messages": QUESTION}, timeout=10).json()
    assert chat["count"] > t["count"]
