"""`tandem serve -c FILE` end to end: the frontend launches a prefill and a decode worker (KV over UCX,
every request prefilled remotely), and its greedy output must equal an aggregated in-process engine's
token for token. Then a worker is SIGKILLed mid-stream: the request ends with a clear error, the
supervisor restarts the worker, and new requests succeed.
"""
import os
import pathlib
import signal
import sys
import threading
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import MODEL_NAME, ROOT, Server  # noqa: E402

QUICKSTART = str(ROOT / "configs/quickstart.yaml")

WORDS = ("the river carried small boats past the old mill while children counted the clouds "
         "and a baker sang about bread ").split()


def prompts():
    out = ["Hello", "The capital of France is", "1, 2, 3, 4,", "def fibonacci(n):"]
    for n in (20, 90, 260, 700):  # 700 words: longer than the decode pool's 512-token chunk
        out.append(" ".join(WORDS[i % len(WORDS)] for i in range(n)))
    shared = " ".join(WORDS[i % len(WORDS)] for i in range(120))  # a prefix the decode worker caches
    out += [shared + " Question one: why?", shared + " Question two: how?", shared + " Question three: when?"]
    return out


def complete(server, prompt, max_tokens=24):
    r = requests.post(server.url + "/v1/completions", timeout=300, json={
        "model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "logprobs": 0})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    return choice["text"], choice["logprobs"]["tokens"], r.json()["usage"]


@pytest.fixture(scope="module")
def servers():
    aggregated = Server()
    disaggregated = Server(extra_args=["-c", QUICKSTART])
    yield aggregated, disaggregated
    disaggregated.stop()
    aggregated.stop()


def test_disaggregated_equals_aggregated(servers):
    aggregated, disaggregated = servers
    for prompt in prompts():
        want_text, want_tokens, want_usage = complete(aggregated, prompt)
        got_text, got_tokens, got_usage = complete(disaggregated, prompt)
        assert got_tokens == want_tokens, f"prompt of {len(prompt)} chars"
        assert got_text == want_text
        assert got_usage["prompt_tokens"] == want_usage["prompt_tokens"]
        assert got_usage["completion_tokens"] == want_usage["completion_tokens"]


def worker_pids(server, role):
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server.proc.pid and b"worker" in cmdline and role.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def test_killed_decode_worker_fails_its_stream_and_is_replaced(servers):
    _, disaggregated = servers
    [decode_pid] = worker_pids(disaggregated, "decode")
    result = {}

    def stream():
        try:
            r = requests.post(disaggregated.url + "/v1/completions", stream=True, timeout=300, json={
                "model": MODEL_NAME, "prompt": "Once upon a time", "max_tokens": 1500, "temperature": 0,
                "ignore_eos": True, "stream": True})
            result["status"] = r.status_code
            result["lines"] = [line for line in r.iter_lines() if line]
        except requests.RequestException as e:  # a dropped connection also counts as a clear end
            result["exception"] = repr(e)

    t = threading.Thread(target=stream)
    t.start()
    time.sleep(1.5)  # the stream is producing tokens
    os.kill(decode_pid, signal.SIGKILL)
    t.join(timeout=120)
    assert not t.is_alive()
    if "exception" not in result:
        body = b"\n".join(result["lines"])
        assert b'"error"' in body, body[-2000:]
        assert b"[DONE]" not in body or b'"error"' in body

    # The supervisor restarts the decode worker; new requests succeed.
    deadline = time.time() + 60
    while time.time() < deadline:
        pids = worker_pids(disaggregated, "decode")
        if pids and pids != [decode_pid]:
            try:
                text, _, _ = complete(disaggregated, "The capital of France is", max_tokens=8)
                assert isinstance(text, str)
                break
            except AssertionError:
                pass
        time.sleep(0.5)
    else:
        pytest.fail("no successful request after the decode worker was killed:\n" + "".join(disaggregated.log[-40:]))
    assert "killed by signal 9" in "".join(disaggregated.log)
