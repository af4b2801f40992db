"""Every notebook in tutorials/ is stored without outputs and executes offline without an error.

The notebooks run with nbclient on a kernel started from this interpreter (``sys.executable``): a kernelspec
pointing at it is written into a temporary directory put first on ``JUPYTER_PATH``, so a fresh virtual
environment needs nothing installed by hand, and no ``python3`` kernel of another environment can be picked up.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
EXPECTED = {
    "introduction.ipynb",
    "metrics_and_tuning.ipynb",
    "object_detection.ipynb",
    "semantic_segmentation.ipynb",
    "embeddings_similarity.ipynb",
    "deep_feature_factorization.ipynb",
    "vision_transformers.ipynb",
}
KERNEL_NAME = "pytorch-grad-cam-tests"
CELL_TIMEOUT_S = 300


def execute_notebook(path: Path, kernel_name: str, timeout: int = CELL_TIMEOUT_S) -> nbformat.NotebookNode:
    """Run every cell of the notebook at ``path`` (in its own directory) and return the executed notebook.

    Raises ``nbclient.exceptions.CellExecutionError`` (with the cell's traceback) when a cell fails, and
    ``CellTimeoutError`` when one runs longer than ``timeout`` seconds. The kernel gets one intra-op thread,
    as the other subprocess tests do: the test machines are small and shared.
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(path.parent)}}
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    client.execute(env=env)
    return notebook


@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernelspec that starts ipykernel with this very interpreter."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "pytorch_grad_cam tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(root), os.environ.get("JUPYTER_PATH")])))
        yield KERNEL_NAME


def test_every_tutorial_is_present() -> None:
    assert {path.name for path in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"
    assert notebook.metadata.get("kernelspec", {}).get("language") == "python"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_executes(path: Path, kernel_name: str, record_property: Callable[[str, object], None]) -> None:
    start = time.perf_counter()
    notebook = execute_notebook(path, kernel_name)
    record_property("execution_s", round(time.perf_counter() - start, 1))
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells and all(cell.execution_count is not None for cell in code_cells)
    errors = [output for cell in code_cells for output in cell.outputs if output.output_type == "error"]
    assert not errors
    figures = sum("image/png" in output.get("data", {}) for cell in code_cells for output in cell.outputs)
    assert figures > 0, f"{path.name} showed no figure"
