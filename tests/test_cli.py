"""`jaxtt demo` end to end at toy size: the table, the JSON results and the plot."""

import json

import numpy as np

from jaxtt.cli import main

TINY = ["demo", "--n", "300", "--T", "20", "--rank", "2", "--m", "4", "--sweeps", "1", "--repeats", "1",
        "--nn-width", "8", "--nn-depth", "1", "--nn-steps", "5", "--batch-size", "32", "--samples", "100",
        "--ddim-steps", "5", "--no-progress"]


def test_demo_writes_results_and_plot(tmp_path, capsys):
    assert main([*TINY, "--out", str(tmp_path)]) == 0
    assert "FTT (ALS)" in capsys.readouterr().out
    payload = json.loads((tmp_path / "demo_results.json").read_text())
    results = payload["results"]
    assert set(results) == {"FTT (ALS)", "ResNet-MLP (AdamW)", "N(0, I) noise"}
    for row in results.values():
        assert all(np.isfinite(v) for v in row.values())
    assert (tmp_path / "demo_samples.png").stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp*"))
