"""Per-API-key rate limits (issue 18): frontend.rate_limit.requests_per_minute and tokens_per_minute
apply to each key on its own. Over a limit: 429, code rate_limit_exceeded, a Retry-After that is
enough, nothing charged; a request larger than a minute's token allowance is told so (400). The
official openai client sees the 429 as openai.RateLimitError."""
import time

import pytest
import requests

from conftest import MODEL_NAME, Server

KEYS = ["key-alpha", "key-beta"]


@pytest.fixture(scope="module")
def limited():
    s = Server(extra_args=["--set", "frontend.rate_limit.requests_per_minute=3",
                           "--set", "frontend.rate_limit.tokens_per_minute=600"],
               env={"TANDEM_API_KEYS": ",".join(KEYS)})
    yield s
    s.stop()


def complete(server, key, prompt="Hello", max_tokens=4):
    return requests.post(server.url + "/v1/completions", timeout=120, headers={"Authorization": f"Bearer {key}"},
                         json={"model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})


def test_each_key_gets_its_own_requests_per_minute(limited):
    assert [complete(limited, KEYS[0]).status_code for _ in range(3)] == [200, 200, 200]
    refused = complete(limited, KEYS[0])
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded", error
    assert "requests_per_minute" in error["message"], error
    assert KEYS[0] not in refused.text  # the key is never echoed
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 20, retry_after  # one request refills in 60 / 3 s
    assert complete(limited, KEYS[1]).status_code == 200  # the other key is not affected
    assert requests.post(limited.url + "/v1/completions", timeout=30, json={"model": MODEL_NAME, "prompt": "x"}
                         ).status_code == 401  # no key: refused before any limit
    text = requests.get(limited.url + "/metrics", timeout=10).text
    assert KEYS[0] not in text and KEYS[1] not in text  # no secrets in /metrics


def test_tokens_per_minute_and_a_request_too_large_for_it(limited):
    key = KEYS[1]
    too_large = complete(limited, key, max_tokens=700)
    assert too_large.status_code == 400, too_large.text
    assert "tokens per minute" in too_large.json()["error"]["message"]
    # ~350 tokens each (max_tokens dominates): what is left of the key's 600 tokens per minute after
    # the small request of the test above admits one, not two (its requests per minute would).
    first, second = complete(limited, key, max_tokens=350), complete(limited, key, max_tokens=350)
    assert first.status_code == 200, first.text
    assert second.status_code == 429, second.text
    assert "tokens_per_minute" in second.json()["error"]["message"]
    assert int(second.headers["Retry-After"]) >= 1


def test_openai_client_sees_a_rate_limit_error(limited):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=limited.url + "/v1", api_key=KEYS[0], max_retries=0)
    with pytest.raises(openai.RateLimitError) as e:
        for _ in range(5):
            client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=2)
    assert e.value.status_code == 429
