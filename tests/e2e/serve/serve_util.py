"""Helpers for the `tandem serve -c` tests: per-worker metrics, the supervisor's worker processes."""
import pathlib
import re
import time

import pytest
import requests


def worker_metric(server, name, role, **extra):
    """The value of per-worker metric `name` for the (only) worker of `role`, or None when absent."""
    text = requests.get(server.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, value = line[len(name) + 1:].rsplit("} ", 1)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if labels.get("role") == role and all(labels.get(k) == v for k, v in extra.items()):
            return float(value)
    return None


def wait_for(predicate, timeout, what, server):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return time.time()
        time.sleep(0.05)
    pytest.fail(f"{what} not reached in {timeout} s:\n" + "".join(server.log[-40:]))


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
