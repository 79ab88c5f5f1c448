"""Execute notebooks/practical_ml.ipynb headless and fail on any error."""

import os
import pathlib

import pytest

import mla

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK = (
    pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "practical_ml.ipynb"
)

# Seconds that one cell may run before the execution is abandoned. The whole
# notebook takes well under a minute, and the margin is for a loaded machine.
CELL_TIMEOUT = 300


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"cell {index} has stored outputs"
        assert cell.execution_count is None, f"cell {index} has an execution count"


def test_notebook_executes_without_errors(monkeypatch):
    # The kernel is a new process: put the directory of the mla that the tests
    # import first on its path, so that it runs the same build.
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(mla.__file__)))
    paths = [package_parent]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    # A failing assert raises CellExecutionError, naming the cell and the error.
    client.execute()

    images = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            assert output.output_type != "error", f"cell {index}: {output}"
            if output.output_type == "stream":
                assert output.name == "stdout", f"cell {index} wrote: {output.text}"
            if "image/png" in output.get("data", {}):
                images += 1
    # Two figures: the timing comparison of the loops section, and the loss
    # curve with the misclassified digits of the training section.
    assert images == 2
