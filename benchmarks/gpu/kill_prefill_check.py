#!/usr/bin/env python3
"""On one GPU: `tandem serve -c` with a prefill and a decode worker sharing GPU 0 (the Llama-3-8B shape,
dummy weights; MODEL_DIR holds its config.json and a tokenizer), KV over UCX cuda_ipc, layer-wise. An
8K-token prompt is sent and the prefill worker is SIGKILLed while it computes (and streams) that
prompt's KV. Expected (issue 14): the request ends with a clear error, not a hang; the decode worker
holds 0 KV blocks again within seconds; the supervisor restarts the prefill worker and the next
request succeeds. Prints what happened and exits non-zero when an expectation fails.
Usage: kill_prefill_check.py TANDEM_BINARY MODEL_DIR
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serve_disagg_check import model_id, stop, wait_healthy  # noqa: E402
from ttft_8b_check import COMMON, DIS  # noqa: E402


def metric(url, name, role):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + "{") and f'role="{role}"' in line:
                return float(line.rsplit(" ", 1)[1])
    return None


def prefill_pids(server_pid):
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server_pid and b"worker" in argv and b"prefill" in argv:
            pids.append(int(entry.name))
    return pids


def complete(url, model, ids, result):
    body = {"model": model, "prompt": ids, "max_tokens": 4, "temperature": 0}
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.time()
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            result["status"], result["body"] = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        result["status"], result["body"] = e.code, e.read().decode()
    except Exception as e:  # noqa: BLE001
        result["status"], result["body"] = None, repr(e)
    result["seconds"] = time.time() - t0


def main():
    tandem, model_dir = sys.argv[1], sys.argv[2]
    port = 8500
    path = "/tmp/kill_prefill.yaml"
    with open(path, "w") as f:
        f.write(COMMON.format(model=model_dir, port=port, grpc=port + 1, utilization=0.42) +
                DIS.replace("devices: [1]", "devices: [0]"))
    log = open("/tmp/kill_prefill.log", "w")
    proc = subprocess.Popen([tandem, "serve", "-c", path], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    failures = []
    try:
        wait_healthy(url, proc, timeout=600)
        model = model_id(url)
        warm = {}
        complete(url, model, list(range(1000, 1512)), warm)  # graphs captured, GEMMs tuned
        [victim] = prefill_pids(proc.pid)
        result = {}
        t = threading.Thread(target=complete, args=(url, model, [1000 + (i * 7919) % 100000 for i in range(7936)],
                                                    result))
        t.start()
        deadline = time.time() + 30
        while (metric(url, "tandem_worker_kv_blocks_used", "decode") or 0) == 0:  # its blocks are taken
            if time.time() > deadline:
                failures.append("the decode worker never took the prompt's blocks")
                break
            time.sleep(0.005)
        time.sleep(0.05)  # into the prefill (~220 ms for 8K tokens) and its layer-wise transfer
        os.kill(victim, 9)
        killed = time.time()
        t.join(timeout=120)
        if t.is_alive():
            failures.append("the request hung after the prefill worker was killed")
        print(f"request: HTTP {result.get('status')} after {result.get('seconds', 0):.2f} s: "
              f"{result.get('body', '')[:300]}")
        if result.get("status") in (None, 200):
            failures.append(f"expected a clear error, got {result.get('status')}")
        freed = None
        while time.time() < killed + 30:
            if metric(url, "tandem_worker_kv_blocks_used", "decode") == 0:
                freed = time.time() - killed
                break
            time.sleep(0.05)
        print(f"decode worker at 0 KV blocks {freed:.2f} s after the kill" if freed is not None
              else "decode worker still holds KV blocks 30 s after the kill")
        if freed is None:
            failures.append("blocks held on the decode worker")
        again, deadline = {}, time.time() + 120
        while time.time() < deadline:
            complete(url, model, list(range(2000, 2512)), again)
            if again.get("status") == 200:
                break
            time.sleep(1)
        print(f"next request after the restart: HTTP {again.get('status')} "
              f"({time.time() - killed:.1f} s after the kill); prefill pids {prefill_pids(proc.pid)} (was {victim})")
        if again.get("status") != 200:
            failures.append("no successful request after the prefill worker's restart")
        with open("/tmp/kill_prefill.log") as f:
            restarted = [line.strip() for line in f if re.search(r"killed by signal|restart", line)]
        print("\n".join(restarted[:4]))
    finally:
        stop(proc, timeout=60)
    print("FAILED: " + "; ".join(failures) if failures else "OK")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
