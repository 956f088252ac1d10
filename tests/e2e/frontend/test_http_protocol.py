"""HTTP/1.1 as a hostile but legitimate client speaks it, over raw sockets (issue 17): bytes that are
not UTF-8, malformed framing, pipelining and half-closes. Whatever is sent, the server answers with
OpenAI's error JSON or the response asked for, and keeps running."""
import json

import pytest
import requests

from conftest import MODEL_NAME, RawConnection

M = MODEL_NAME


def assert_alive(server):
    assert requests.get(server.url + "/health", timeout=10).status_code == 200
    assert server.proc.poll() is None, "".join(server.log)


def check_error_json(resp, status):
    assert resp.status == status, resp.body
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    return err


@pytest.mark.parametrize("target", [b"/\xff", b"/v1/models/abc\xfe", b"/\xc3", b"/v1/models/\xed\xa0\x80"])
def test_non_utf8_path_is_a_404_not_a_crash(server, target):
    # Issue 17 (1): the 404 body echoed the path and nlohmann's dump() threw, aborting the process.
    # Unknown routes are answered before the API-key check, so this needed no key.
    with RawConnection(server.http_port) as c:
        c.send(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        err = check_error_json(c.read_response(), 404)
        assert "\ufffd" in err["message"]
        # The connection stays usable.
        c.send(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
    assert_alive(server)

