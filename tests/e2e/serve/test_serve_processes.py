"""`tandem serve -c`'s worker processes as the operating system sees them (issue 17): the resolved
config never lands in /tmp, a (re)started worker holds none of the frontend's descriptors (its HTTP
listener above all), and workers do not outlive the supervisor."""
import ipaddress
import os
import pathlib
import signal
import sys
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import ROOT, Server  # noqa: E402
from serve_util import wait_for, worker_metric, worker_pids  # noqa: E402

QUICKSTART = str(ROOT / "configs/quickstart.yaml")


def leftover_config(pid):
    return pathlib.Path(f"/tmp/tandem-serve-{pid}.yaml")


def alive(pid):
    """Running, as opposed to gone or a zombie nobody reaped yet."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def descriptors(pid):
    """{fd: target} of a process, as /proc/PID/fd shows them."""
    out = {}
    for entry in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            out[int(entry.name)] = os.readlink(entry)
        except OSError:
            pass
    return out


def shared_kernel_objects(worker_pid, frontend_pid):
    """The worker's sockets and pipes (beyond stdin/out/err) that are the frontend's too: inherited."""
    frontend = set(descriptors(frontend_pid).values())
    return {fd: target for fd, target in descriptors(worker_pid).items()
            if fd > 2 and target.startswith(("socket:", "pipe:")) and target in frontend}


@pytest.fixture(scope="module")
def served():
    s = Server(extra_args=["-c", QUICKSTART])
    yield s
    s.stop()


def test_resolved_config_is_not_a_file_in_tmp(served):
    # Issue 17 (13): every run left /tmp/tandem-serve-<pid>.yaml behind, even after a clean stop.
    assert not leftover_config(served.proc.pid).exists()
    for role in ("prefill", "decode"):
        [pid] = worker_pids(served, role)
        assert b"/dev/fd/3" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()


def test_restarted_worker_holds_none_of_the_frontends_descriptors(served):
    # Issue 17 (2): a restarted worker inherited the frontend's HTTP listener (and more); when the
    # frontend then died, clients connected to the port and hung.
    for role in ("prefill", "decode"):
        [pid] = worker_pids(served, role)
        assert shared_kernel_objects(pid, served.proc.pid) == {}, role
    [old] = worker_pids(served, "decode")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: worker_pids(served, "decode") not in ([], [old]) and
             worker_metric(served, "tandem_worker_up", "decode") == 1, 60, "the decode worker restarted", served)
    [new] = worker_pids(served, "decode")
    fds = descriptors(new)
    assert shared_kernel_objects(new, served.proc.pid) == {}, fds
    assert fds[3].startswith("/memfd:tandem-serve-config"), fds  # its config, and nothing else of the frontend's
    r = requests.post(served.url + "/v1/completions", timeout=120,
                      json={"model": "smollm2", "prompt": "Hello", "max_tokens": 2})
    assert r.status_code == 200, r.text


def listening_addresses(pid):
    """(address, port) of every TCP socket `pid` listens on (IPv4 and IPv6)."""
    inodes = {target[len("socket:["):-1] for target in descriptors(pid).values() if target.startswith("socket:[")}
    out = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in pathlib.Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            # The kernel prints the address as 32-bit words in host (little-endian) order.
            raw = b"".join(bytes.fromhex(hex_addr[i:i + 8])[::-1] for i in range(0, width, 8))
            addr = ipaddress.ip_address(raw)
            if addr.version == 6 and addr.ipv4_mapped:
                addr = addr.ipv4_mapped  # gRPC listens on ::ffff:127.0.0.1 for 127.0.0.1
            out.append((str(addr), int(hex_port, 16)))
    return out


def test_workers_listen_only_on_their_address(served):
    # Issue 17 (9): each worker's UCX (KV transfer) listener was on 127.0.0.1 and also on the
    # machine's external address, while everything else listened on loopback.
    for role in ("prefill", "decode"):
        [pid] = worker_pids(served, role)
        addresses = listening_addresses(pid)
        assert len(addresses) >= 2, addresses  # gRPC and the KV transport at least
        assert all(addr == "127.0.0.1" for addr, _ in addresses), (role, addresses)


def test_clean_stop_leaves_nothing_behind(served):
    pids = worker_pids(served, "prefill") + worker_pids(served, "decode")
    served.stop()
    assert served.proc.returncode == 0, "".join(served.log[-40:])
    assert not leftover_config(served.proc.pid).exists()
    assert not any(alive(pid) for pid in pids)


def test_workers_die_with_the_supervisor():
    # Issue 17 (2): with the supervisor SIGKILLed, its workers were re-parented and kept running.
    s = Server(extra_args=["-c", QUICKSTART])
    pids = worker_pids(s, "prefill") + worker_pids(s, "decode")
    assert len(pids) == 2
    try:
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait()
        deadline = time.time() + 15
        while any(alive(pid) for pid in pids) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in pids), "workers outlived the supervisor"
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
