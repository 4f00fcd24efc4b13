"""coursekit.grading.release and the `coursekit release` command."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursekit.cli import main
from coursekit.grading.release import ReleaseError, differences, release, release_notebook, release_source

EXERCISE = '''import torch


def scale(x, k):
    """Multiply by k.

    Args:
        x: a tensor.
    """
    # BEGIN SOLUTION
    y = x * k
    return y
    # END SOLUTION'''

CHECK = 'check("demo.scale", scale)'


def executed(source, text="out\n", count=1):
    cell = new_code_cell(source, execution_count=count)
    cell.outputs = [new_output("stream", name="stdout", text=text)]
    return cell


def solution_notebook():
    nb = new_notebook(cells=[
        new_markdown_cell("# Demo\nA formula $x$."),
        executed("print('setup')", "setup\n", 1),
        executed(EXERCISE, "", 2),
        executed(CHECK, "\u2714 demo.scale: passed\n", 3),
        executed("print(scale_lib(2))", "4\n", 4),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                 "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}})
    nb.cells[4].metadata["widgets"] = {"stale": True}
    return nb


def write(folder, name, nb):
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)


# ---------------------------------------------------------------- one cell

def test_region_becomes_a_stub_at_the_begin_indentation():
    source, found = release_source(EXERCISE)
    assert found
    assert source.endswith('    """\n    raise NotImplementedError("Exercise: write the body of scale")')
    assert "x * k" not in source and "SOLUTION" not in source
    assert source.startswith("import torch\n\n\ndef scale(x, k):\n    \"\"\"Multiply by k.")


def test_code_after_the_region_and_several_regions_stay():
    source, found = release_source("a = 1\n# BEGIN SOLUTION\nb = 2\n# END SOLUTION\nc = 3\n"
                                   "def f():\n        # BEGIN SOLUTION\n        pass\n        # END SOLUTION\n")
    assert found
    assert source == ('a = 1\nraise NotImplementedError("Exercise: write this code")\nc = 3\ndef f():\n'
                      '        raise NotImplementedError("Exercise: write the body of f")\n')


def test_cells_without_markers_are_untouched():
    assert release_source("x = 1  # the solution begins here\n") == ("x = 1  # the solution begins here\n", False)


@pytest.mark.parametrize("source, match", [
    ("# BEGIN SOLUTION\nx = 1\n", "line 1: # BEGIN SOLUTION is never closed"),
    ("x = 1\n# END SOLUTION\n", "line 2: # END SOLUTION without a # BEGIN SOLUTION"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n# END SOLUTION\n", "line 2: nested"),
    ("# begin solution\nx = 1\n# end solution\n", "line 1: '# begin solution' looks like a solution marker"),
    ("    #BEGIN SOLUTION\n", "looks like a solution marker"),
    ("### END SOLUTION\n", "looks like a solution marker"),
])
def test_malformed_markers_are_errors(source, match):
    with pytest.raises(ReleaseError, match=match):
        release_source(source)


# ---------------------------------------------------------------- one notebook

def test_release_notebook_clears_exercise_and_check_cells_only():
    nb = solution_notebook()
    student = release_notebook(nb, "demo.ipynb")
    setup, exercise, check, later = student.cells[1:]
    assert setup.outputs and setup.execution_count == 1
    assert later.outputs and later.execution_count == 4
    for cell in (exercise, check):
        assert cell.outputs == [] and cell.execution_count is None
    assert check.source == CHECK
    assert "widgets" not in student.metadata and "widgets" not in later.metadata
    assert "widgets" in nb.metadata and "x * k" in nb.cells[2].source  # the input is untouched
    nbformat.validate(student)


@pytest.mark.parametrize("cell", [new_markdown_cell("# BEGIN SOLUTION\ntext\n# END SOLUTION"),
                                  nbformat.v4.new_raw_cell("# END SOLUTION")])
def test_markers_outside_code_cells_are_errors(cell):
    nb = solution_notebook()
    nb.cells.insert(2, cell)
    with pytest.raises(ReleaseError, match=r"demo.ipynb, cell 2: solution markers in a (markdown|raw) cell"):
        release_notebook(nb, "demo.ipynb")


def test_error_names_notebook_and_cell():
    nb = solution_notebook()
    nb.cells[2].source = EXERCISE.replace("    # END SOLUTION", "")
    with pytest.raises(ReleaseError, match=r"^demo.ipynb, cell 2: line \d+: # BEGIN SOLUTION is never closed"):
        release_notebook(nb, "demo.ipynb")


# ---------------------------------------------------------------- folders and command line

def test_release_is_deterministic_and_check_mode_detects_drift(tmp_path, capsys):
    write(tmp_path / "solutions", "01_demo.ipynb", solution_notebook())
    out = tmp_path / "notebooks"
    assert main(["release", str(tmp_path / "solutions"), str(out)]) == 0
    first = (out / "01_demo.ipynb").read_bytes()
    assert release(tmp_path / "solutions", out) == []  # unchanged: nothing rewritten
    assert main(["release", str(tmp_path / "solutions"), str(out)]) == 0
    assert (out / "01_demo.ipynb").read_bytes() == first
    assert first.endswith(b"\n") and json.loads(first)["nbformat"] == 4
    assert main(["release", "--check", str(tmp_path / "solutions"), str(out)]) == 0

    edited = json.loads(first)
    edited["cells"][2]["source"] = "def scale(x, k):\n    return x * k\n"  # a hand edit
    (out / "01_demo.ipynb").write_text(json.dumps(edited))
    write(out, "99_orphan.ipynb", new_notebook())
    capsys.readouterr()
    assert main(["release", "--check", str(tmp_path / "solutions"), str(out)]) == 1
    report = capsys.readouterr().out
    assert "01_demo.ipynb differs" in report and "99_orphan.ipynb has no solution notebook" in report
    (out / "01_demo.ipynb").unlink()
    assert differences(tmp_path / "solutions", out)[0].endswith("01_demo.ipynb is missing")


def test_a_bad_notebook_writes_nothing(tmp_path, capsys):
    solutions, out = tmp_path / "solutions", tmp_path / "notebooks"
    write(solutions, "01_good.ipynb", solution_notebook())
    bad = solution_notebook()
    bad.cells[3].source = "# END SOLUTION\n" + CHECK
    write(solutions, "02_bad.ipynb", bad)
    assert main(["release", str(solutions), str(out)]) == 2
    assert "02_bad.ipynb, cell 3: line 1: # END SOLUTION without" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())


def test_malformed_json_is_a_release_error(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "01_broken.ipynb").write_text('{"cells": [')
    with pytest.raises(ReleaseError, match=r"01_broken.ipynb: not a valid notebook"):
        release(tmp_path / "s", tmp_path / "n")
    with pytest.raises(ReleaseError, match="no such folder"):
        release(tmp_path / "missing", tmp_path / "n")


def test_written_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from coursekit.grading.release import write_atomic

    write_atomic("x", tmp_path / "new.txt")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    os.chmod(tmp_path / "new.txt", 0o640)
    write_atomic("y", tmp_path / "new.txt")
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640  # an existing file keeps its mode
    assert (tmp_path / "new.txt").read_text() == "y"


def test_grade_command_is_forwarded_to_the_autograder(monkeypatch):
    import sys
    import types

    calls = []
    fake = types.ModuleType("coursekit.grading.autograde")
    fake.grade_command = lambda path, **kwargs: calls.append((path, kwargs)) or 3
    monkeypatch.setitem(sys.modules, "coursekit.grading.autograde", fake)
    assert main(["grade", "subs/", "--assignment", "01_spatial_transformers", "--out", "reports",
                 "--workers", "2", "--timeout", "90", "--regrade"]) == 3
    assert calls == [("subs/", {"assignment": "01_spatial_transformers", "out": "reports", "workers": 2,
                                "timeout": 90.0, "regrade": True})]
    main(["grade", "one.ipynb"])  # options left out keep grade_command's own defaults
    assert calls[1] == ("one.ipynb", {})


def test_python_dash_m_coursekit_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "coursekit", "release", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "SOLUTIONS_DIR NOTEBOOKS_DIR" in done.stdout
    done = subprocess.run([sys.executable, "-m", "coursekit"], capture_output=True, text=True)
    assert done.returncode == 2 and "COMMAND" in done.stderr
