"""benchmarks/sweep end to end, small: two deployments of the CPU quickstart (aggregated and 1p1d) at
one rate, a few short requests each; the summary has a row per deployment with every request done,
and the three plots are PNG images."""
import os
import pathlib
import subprocess
import sys

from bench_util import ROOT, model_path, tandem_bin


def test_sweep_writes_summary_and_plots(tmp_path):
    model_path()
    out = tmp_path / "sweep"
    env = dict(os.environ, TANDEM_BIN=tandem_bin())
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/sweep"), "--deployments", "aggregated,1p1d",
                           "--rates", "2", "--num-requests", "3", "--input-len", "16", "--output-len", "4",
                           "--warmup", "0", "--slo", "ttft_ms=60000,itl_ms=60000", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    for name in ("aggregated", "1p1d"):
        rows = [line for line in summary.splitlines() if line.startswith(f"| {name} (")]
        assert len(rows) == 1, summary
        assert "| 3 / 0 |" in rows[0], rows[0]
        assert (out / f"{name}-rate2.json").exists()
    for png in ("goodput.png", "ttft.png", "itl.png"):
        data = pathlib.Path(out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000, png
