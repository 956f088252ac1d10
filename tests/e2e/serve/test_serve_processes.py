"""`tandem serve -c`'s worker processes as the operating system sees them (issue 17): the resolved
config never lands in /tmp."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "frontend"))
from conftest import ROOT, Server  # noqa: E402
from serve_util import worker_pids  # noqa: E402

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


def test_clean_stop_leaves_nothing_behind(served):
    pids = worker_pids(served, "prefill") + worker_pids(served, "decode")
    served.stop()
    assert served.proc.returncode == 0, "".join(served.log[-40:])
    assert not leftover_config(served.proc.pid).exists()
    assert not any(alive(pid) for pid in pids)

