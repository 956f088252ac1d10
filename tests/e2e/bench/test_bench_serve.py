"""`tandem bench` against `tandem serve -c configs/quickstart.yaml` (a prefill and a decode worker on
the CPU, KV over UCX): the figures it reports agree with the frontend's own measurement of the same
requests, read from /metrics before and after (tandem_time_to_first_token_seconds and
tandem_inter_token_latency_seconds: sums and counts, timed from the request's arrival at the
frontend to each token leaving it).

Tolerance: the client's mean TTFT is at least the server's (less 2 ms) and at most 30 ms + 10% more
(connect, HTTP parsing and the SSE write on a shared 2-core machine); its mean inter-token latency
within 5 ms + 10% of the server's. With ignore_eos every request yields exactly max_tokens, and the
token counts agree with the server's counters.
"""
import re
import sys

import pytest
import requests

from bench_util import ROOT, model_path, run_bench

sys.path.insert(0, str(ROOT / "tests/e2e/frontend"))
from conftest import MODEL_NAME, Server  # noqa: E402


def histogram(url, name):
    text = requests.get(url + "/metrics", timeout=10).text
    total = float(re.search(rf"^{name}_sum (\S+)$", text, re.M).group(1))
    count = float(re.search(rf"^{name}_count (\S+)$", text, re.M).group(1))
    return total, count


def counter(url, name):
    return float(re.search(rf"^{name} (\S+)$", requests.get(url + "/metrics", timeout=10).text, re.M).group(1))


@pytest.fixture(scope="module")
def server():
    s = Server(extra_args=["-c", str(ROOT / "configs/quickstart.yaml")])
    yield s
    s.stop()


def test_figures_match_the_servers_metrics(server, tmp_path):
    # Warm the workers up first (one request), then take the server's counters.
    run_bench(tmp_path, "--url", server.url, "--model", MODEL_NAME, "--tokenizer", model_path(), "-n", "1",
              "--input-len", "16", "--output-len", "4", "--warmup", "0", "--no-progress")
    ttft0, itl0 = histogram(server.url, "tandem_time_to_first_token_seconds"), \
        histogram(server.url, "tandem_inter_token_latency_seconds")
    gen0, prompt0 = counter(server.url, "tandem_generation_tokens_total"), counter(server.url, "tandem_prompt_tokens_total")

    proc, record = run_bench(tmp_path, "--url", server.url, "--model", MODEL_NAME, "--tokenizer", model_path(),
                             "-n", "8", "--input-len", "uniform:32:96", "--output-len", "12", "--arrival",
                             "concurrency", "--concurrency", "2", "--warmup", "0", "--seed", "11", "--no-progress",
                             "--slo", "ttft_ms=5000,itl_ms=1000")
    ttft1, itl1 = histogram(server.url, "tandem_time_to_first_token_seconds"), \
        histogram(server.url, "tandem_inter_token_latency_seconds")
    s = record["summary"]
    assert s["completed"] == 8 and s["failed"] == 0, proc.stdout
    reqs = record["requests"]
    assert all(r["output_tokens"] == 12 for r in reqs)  # ignore_eos: exactly what was asked
    # The prompts are token-exact: the server counted what the client's tokenizer counted.
    assert [r["input_tokens"] for r in reqs] == [r["input_tokens_client"] for r in reqs]
    assert counter(server.url, "tandem_generation_tokens_total") - gen0 == s["total_output_tokens"] == 96
    assert counter(server.url, "tandem_prompt_tokens_total") - prompt0 == s["total_input_tokens"]

    server_ttft_ms = (ttft1[0] - ttft0[0]) / (ttft1[1] - ttft0[1]) * 1e3
    assert ttft1[1] - ttft0[1] == 8
    client_ttft_ms = s["ttft_ms"]["mean"]
    assert server_ttft_ms - 2 <= client_ttft_ms <= server_ttft_ms * 1.1 + 30, (client_ttft_ms, server_ttft_ms)

    server_itl_count = itl1[1] - itl0[1]
    server_itl_ms = (itl1[0] - itl0[0]) / server_itl_count * 1e3
    client_itls = [x for r in reqs for x in r["itl_ms"]]
    assert len(client_itls) == server_itl_count == 8 * 11  # one event per token
    client_itl_ms = sum(client_itls) / len(client_itls)
    assert abs(client_itl_ms - server_itl_ms) <= 5 + 0.1 * server_itl_ms, (client_itl_ms, server_itl_ms)
    print(f"TTFT mean: bench {client_ttft_ms:.1f} ms, server {server_ttft_ms:.1f} ms; "
          f"ITL mean: bench {client_itl_ms:.2f} ms, server {server_itl_ms:.2f} ms")


def test_chat_and_prefix_workload(server, tmp_path):
    _, record = run_bench(tmp_path, "--url", server.url, "--model", MODEL_NAME, "--tokenizer", model_path(),
                          "--api", "chat", "--workload", "prefix", "--prefix-len", "128", "--num-prefixes", "2",
                          "-n", "4", "--input-len", "16", "--output-len", "6", "--arrival", "burst", "--warmup", "1",
                          "--no-progress")
    s = record["summary"]
    assert s["completed"] == 4 and s["failed"] == 0
    assert all(r["output_tokens"] == 6 for r in record["requests"])
    # The chat template wraps the prompt: the server counts more tokens than the content has.
    assert all(r["input_tokens"] > r["input_tokens_client"] >= 128 for r in record["requests"])
