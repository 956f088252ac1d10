"""Helpers for `tandem bench`'s e2e tests: run the binary, start the stub server."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests/e2e/frontend"))
from conftest import model_path, tandem_bin  # noqa: E402,F401  (the e2e suites' one copy)


def run_bench(tmp_path, *args, check=True, timeout=300):
    """Runs `tandem bench ARGS --output-json FILE`; returns (completed process, record or None)."""
    out = tmp_path / f"bench-{len(list(tmp_path.iterdir()))}.json"
    proc = subprocess.run([tandem_bin(), "bench", *args, "--output-json", str(out)], capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(out.read_text()) if out.exists() else None
    return proc, record


class StubServer:
    """tests/e2e/bench/stub_openai_server.py on a free port."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "stub_openai_server.py"), *args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), line
        self.url = f"http://127.0.0.1:{int(line.split()[-1])}"

    def log(self):
        import requests
        return requests.get(self.url + "/stub/log", timeout=10).json()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
