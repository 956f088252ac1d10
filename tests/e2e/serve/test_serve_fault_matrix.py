"""The fault matrix (issue 18) on `tandem serve -c` with two prefill and two decode workers (real
processes, KV over UCX, the quickstart's model): one worker of a role is SIGKILLed, or SIGSTOPped
(hung) for a few seconds and continued, at a stage of the requests it holds:

  queued       long prompts waiting in the prefill worker's queue behind one being computed (the decode
               worker holding their blocks waits for them)
  prefilling   a long prompt being computed on the prefill worker; its KV moves to the decode worker
               layer by layer as it is computed (transfer.layerwise), so this is also "transferring KV"
  decoding     streams producing tokens on the decode worker

The victim is whichever worker of the role holds that stage (read from its per-worker metrics).
Deadlines, all stated in the config: router.load_report_timeout_s (a silent worker is down),
disaggregation.remote_prefill_timeout_s (a remote prefill that never answers), the clients' own
timeouts far above both. Expected everywhere: no request hangs; each affected request either completes
(in full) or ends with a clear error; requests on the other workers complete in full (a stream on the
surviving decode worker gets every token); requests sent once the victim is marked down all succeed;
every worker, the victim included once it is back (restarted by the supervisor, or continued), returns
to 0 KV blocks; and afterwards all four workers serve again. The test prints the table the issue asks
for: fault x role x stage -> requests affected, outcome, blocks left."""
import json
import os
import pathlib
import re
import signal
import sys
import threading
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import MODEL_NAME, ROOT, Server  # noqa: E402
from serve_util import wait_for  # noqa: E402

QUICKSTART = str(ROOT / "configs/quickstart.yaml")
STOP_S = 5  # how long a SIGSTOPped worker stays stopped (longer than load_report_timeout_s)
# Sent while the victim is down and after every case, each compared with its text before any fault:
# a late KV write into blocks that were freed and given to another request would show here.
CHECK_PROMPTS = ["The capital of France is", "Water boils at", "One, two, three,", "The river carried"]
CLIENT_TIMEOUT_S = 240  # far above every deadline: a request still open at this point has hung
TABLE = []


@pytest.fixture(scope="module")
def served():
    s = Server(extra_args=["-c", QUICKSTART,
                           "--set", "pools.prefill.replicas=2", "--set", "pools.decode.replicas=2",
                           "--set", "router.load_report_timeout_s=2",
                           "--set", "disaggregation.remote_prefill_timeout_s=60",
                           "--set", "frontend.max_queue_wait_s=120"])
    s.reference = {}
    threads, results = start(s, [(p, 8) for p in CHECK_PROMPTS])
    join(threads)
    for prompt, r in zip(CHECK_PROMPTS, results):
        assert r.get("status") == 200, r
        s.reference[prompt] = r["text"]
    yield s
    for pid in all_worker_pids(s):  # never leave a worker stopped
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    s.stop()
    print("\n| fault | role | stage | requests (affected) | outcome | KV blocks left |\n|---|---|---|---|---|---|")
    for row in TABLE:
        print("| " + " | ".join(row) + " |")


def metrics(server):
    """{(name, address, role): value} of the per-worker metrics."""
    out = {}
    for line in requests.get(server.url + "/metrics", timeout=10).text.splitlines():
        if not line.startswith("tandem_worker_") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels, value = rest.rsplit("} ", 1)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if "address" in labels and "role" in labels and len(labels) == 3 + ("outcome" in labels):
            out[(name, labels["address"], labels["role"])] = float(value)
    return out


def per_worker(server, name, role):
    """{address: value} of metric `name` for the workers of `role`."""
    return {addr: v for (n, addr, r), v in metrics(server).items() if n == name and r == role}


def all_worker_pids(server):
    return [pid for pid, _ in worker_processes(server)]


def worker_processes(server):
    """[(pid, listen address)] of the supervisor's worker processes."""
    out = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = [a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0")]
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError, UnicodeDecodeError):
            continue
        if ppid == server.proc.pid and "worker" in argv and "--listen" in argv:
            out.append((int(entry.name), argv[argv.index("--listen") + 1]))
    return out


def pid_of(server, address):
    [pid] = [p for p, a in worker_processes(server) if a == address]
    return pid


WORDS = "the river carried small boats past the old mill while children watched from the bridge".split()


def long_prompt(tag, words=600):
    """About 600 tokens, a few seconds of prefill on the CPU; the leading tag keeps it out of the caches."""
    return f"{tag}: " + " ".join(WORDS[i % len(WORDS)] for i in range(words))


def post(server, prompt, max_tokens, result, stream=False):
    """A completion (greedy, ignore_eos); result: status, tokens received, error text, seconds."""
    t0 = time.time()
    body = {"model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            "stream": stream}
    try:
        r = requests.post(server.url + "/v1/completions", json=body, timeout=CLIENT_TIMEOUT_S, stream=stream)
        result["status"] = r.status_code
        if not stream:
            if r.status_code == 200:
                result["tokens"] = r.json()["usage"]["completion_tokens"]
                result["text"] = r.json()["choices"][0]["text"]
            else:
                result["error"] = r.text
        else:
            tokens = 0
            for line in r.iter_lines():
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    result["error"] = json.dumps(event["error"])
                    break
                if event.get("choices") and event["choices"][0].get("text") is not None:
                    tokens += 1
                    result["tokens"] = tokens
    except requests.RequestException as e:
        result["status"], result["error"] = None, repr(e)
    result["seconds"] = time.time() - t0


def start(server, prompts_and_tokens, stream=False):
    results = [{} for _ in prompts_and_tokens]
    threads = [threading.Thread(target=post, args=(server, p, n, results[i], stream))
               for i, (p, n) in enumerate(prompts_and_tokens)]
    for t in threads:
        t.start()
    return threads, results


def join(threads):
    for t in threads:
        t.join(timeout=CLIENT_TIMEOUT_S + 30)
    assert not any(t.is_alive() for t in threads), "a request hung"


def outcome_of(result, want_tokens):
    """"ok" (every token), "error" (a clear error: an error status or event), or what went wrong."""
    if result.get("status") == 200 and "error" not in result:
        return "ok" if result.get("tokens") == want_tokens else f"truncated ({result.get('tokens')} tokens)"
    if result.get("status") is None:
        return f"no response: {result.get('error')}"
    return "error"


def check_requests(server, what):
    """CHECK_PROMPTS sent at once: each completes with its text from before any fault."""
    threads, results = start(server, [(p, 8) for p in CHECK_PROMPTS])
    join(threads)
    for prompt, r in zip(CHECK_PROMPTS, results):
        assert outcome_of(r, 8) == "ok", (what, prompt, r)
        assert r["text"] == server.reference[prompt], (what, prompt, r["text"], server.reference[prompt])


def all_up(server, count=4):
    up = metrics(server)
    return sum(1 for (n, _, _), v in up.items() if n == "tandem_worker_up" and v == 1) == count


def blocks_used(server):
    return {addr: v for (n, addr, _), v in metrics(server).items() if n == "tandem_worker_kv_blocks_used"}


def healthy_again(server, what):
    wait_for(lambda: all_up(server), 90, f"all four workers up after {what}", server)
    wait_for(lambda: all(v == 0 for v in blocks_used(server).values()) and len(blocks_used(server)) == 4, 30,
             f"every worker back to 0 KV blocks after {what}", server)


def wait_stage(server, role, stage):
    """The address of a worker of `role` holding requests at `stage` (waits for one)."""
    found = {}

    def ready():
        queue = per_worker(server, "tandem_worker_prefill_queue_length", "prefill")
        running = per_worker(server, "tandem_worker_num_requests_running", "decode")
        blocks = per_worker(server, "tandem_worker_kv_blocks_used", "decode")
        if stage in ("queued", "prefilling"):
            need = 2 if stage == "queued" else 1
            busy = [a for a, v in queue.items() if v >= need]
            if not busy:
                return False
            if role == "prefill":
                found["address"] = busy[0]
            else:  # a decode worker waiting on remote prefills: blocks held, nothing running yet
                waiting = [a for a, v in blocks.items() if v > 0]
                if not waiting:
                    return False
                found["address"] = waiting[0]
            return True
        busy = [a for a, v in running.items() if v >= 1]  # decoding
        if role == "decode" and busy:
            found["address"] = busy[0]
            return True
        return False

    wait_for(ready, 60, f"a {role} worker with requests {stage}", server)
    return found["address"]


MATRIX = [(fault, role, stage) for fault in ("kill", "stop") for role in ("prefill", "decode")
          for stage in ("queued", "prefilling", "decoding")
          if not (role == "prefill" and stage == "decoding")]  # a prefill worker holds nothing while decoding


@pytest.mark.parametrize("fault,role,stage", MATRIX)
def test_fault_matrix(served, fault, role, stage):
    healthy_again(served, "the previous case")
    tag = f"{fault}-{role}-{stage}-{time.time():.0f}"
    decode_tokens = 48
    if stage == "decoding":
        load = [(f"{tag} stream {i}: once upon a time", decode_tokens) for i in range(6)]
        threads, results = start(served, load, stream=True)
        wait_for(lambda: sum(1 for r in results if r.get("tokens", 0) >= 3) >= 3, 60, "streams producing tokens",
                 served)
    else:
        load = [(long_prompt(f"{tag} {i}"), 4) for i in range(6)]
        threads, results = start(served, load)
    victim = wait_stage(served, role, stage)
    running_before = per_worker(served, "tandem_worker_num_requests_running", "decode")
    pid = pid_of(served, victim)
    os.kill(pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
    faulted = time.time()
    try:
        # Once the frontend has marked the victim down (or the supervisor has replaced it), new requests
        # succeed, with the texts they had before any fault.
        wait_for(lambda: per_worker(served, "tandem_worker_up", role).get(victim) != 1 or
                 pid not in all_worker_pids(served), 30, f"the {role} worker at {victim} marked down", served)
        check_requests(served, f"while the {role} worker is down")
        if fault == "stop":
            time.sleep(max(0.0, STOP_S - (time.time() - faulted)))
    finally:
        if fault == "stop":
            os.kill(pid, signal.SIGCONT)
    join(threads)
    outcomes = [outcome_of(r, n) for r, (_, n) in zip(results, load)]
    bad = [(o, r) for o, r in zip(outcomes, results) if o not in ("ok", "error")]
    assert not bad, bad
    for r in results:
        if "error" in r:  # clear: it names what failed, not an internal address
            assert re.search(r"worker|prefill|decode|unavailable|stopped", r["error"], re.I), r["error"]
    if stage == "decoding":  # the streams on the surviving decode worker got every token
        survivors = sum(v for a, v in running_before.items() if a != victim)
        assert outcomes.count("ok") >= survivors, (outcomes, running_before, victim)
    healthy_again(served, f"{fault} of the {role} worker")
    left = sum(blocks_used(served).values())
    affected = len(outcomes) - outcomes.count("ok")
    TABLE.append((fault, role, stage, f"{len(outcomes)} ({affected})",
                  f"{outcomes.count('ok')} complete, {outcomes.count('error')} clear errors; "
                  f"{len(CHECK_PROMPTS)} sent while down: same text",
                  f"{left:.0f}"))
    print(TABLE[-1])
    check_requests(served, f"after the {role} worker came back")  # serving goes on, outputs unchanged
