"""The quick-start notebook: executed at small size by nbclient, so that it cannot go stale.

``notebooks/01_quickstart.ipynb`` reads ``JAXTT_NOTEBOOK_SMALL=1`` from the environment in its first cell and then
runs every experiment at a small size. Its last cell prints the key numbers as JSON, which the tests read back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_quickstart.ipynb"
CELL_TIMEOUT_S = 300
TT_EPS = 1e-5  # the truncation tolerance the notebook passes to from_dense and round


def _kernel_manager() -> KernelManager:
    """A manager for ipykernel's built-in ``python3`` spec, which runs ``sys.executable`` (this interpreter).

    No kernel directories are searched, so a ``python3`` kernel spec installed for the user or the system (which
    could point to another interpreter) cannot take its place.
    """
    return KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))


def _outputs(nb, output_type: str) -> list:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if out.output_type == output_type]


def _summary(nb) -> dict:
    last = nb.cells[-1]
    assert last.cell_type == "code", "the last cell must print the summary"
    return json.loads("".join(out.text for out in last.outputs if out.output_type == "stream"))


def _has_image(nb) -> bool:
    return any("image/png" in out.data for out in _outputs(nb, "display_data"))


def test_quickstart_executes_at_small_size(monkeypatch):
    monkeypatch.setenv("JAXTT_NOTEBOOK_SMALL", "1")  # inherited by the kernel process
    nb = nbformat.read(NOTEBOOK, as_version=4)
    km = _kernel_manager()
    assert km.kernel_spec.argv[0] == sys.executable
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError naming the cell if any cell fails

    assert _outputs(nb, "error") == []
    assert _has_image(nb)
    summary = _summary(nb)
    assert summary["small"] is True
    # TT-SVD and rounding keep their relative error bounds (float32 arithmetic on top).
    assert summary["tt_svd_relative_error"] <= TT_EPS
    assert summary["round_relative_error"] <= 3 * TT_EPS
    assert summary["inner_relative_difference"] <= 1e-5
    # ALS converges on the held-out points.
    assert summary["als_val_residual_last"] < 0.01
    assert summary["als_val_residual_last"] < 0.1 * summary["als_val_residual_first"]
    # The sampler moves the noise towards the data in both metrics.
    assert summary["mmd_samples"] < 0.5 * summary["mmd_noise"]
    assert summary["sliced_w_samples"] < summary["sliced_w_noise"]


def test_committed_notebook_is_executed_at_full_size():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert _outputs(nb, "error") == []
    assert _has_image(nb)
    summary = _summary(nb)
    assert summary["small"] is False
    assert summary["tt_svd_relative_error"] <= TT_EPS
    assert summary["als_val_residual_last"] < 0.01
    assert summary["mmd_samples"] < 0.1 * summary["mmd_noise"]
    assert summary["sliced_w_samples"] < 0.5 * summary["sliced_w_noise"]
