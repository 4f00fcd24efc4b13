"""The course notebooks: solutions run clean, student notebooks fail only at their checks.

Each notebook is executed ONCE (fast profile, one kernel): the solution test both
looks for errors and compares the cells marked ``# NBVAL_CHECK_OUTPUT`` with
their committed outputs, after the sanitizers of ``tests/nbval_sanitize.cfg``
(nbval's lax mode; the same file works with
``pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg solutions/``).
Only stdout and the ``text/plain`` of results are compared: stderr (progress
bars), images and widget views never are.

The remaining tests read the committed files and take milliseconds.
"""

import configparser
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from coursekit.cli import main
from coursekit.grading.release import differences, is_check_cell
from coursekit.notebook_run import errors, execute_notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STUDENT = sorted((ROOT / "notebooks").glob("*.ipynb"))
COMMITTED = SOLUTIONS + STUDENT
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"


def ids(paths):
    return [f"{p.parent.name}/{p.stem}" for p in paths]


def code_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


# ---------------------------------------------------------------- output comparison

def sanitizers(path=Path(__file__).with_name("nbval_sanitize.cfg")):
    config = configparser.ConfigParser(interpolation=None)
    config.read(path)
    return [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()]


SANITIZERS = sanitizers()


def comparable(cell) -> list[str]:
    """The parts of a cell's outputs that nbval-lax would compare, sanitized."""
    parts = []
    for out in cell.get("outputs", ()):
        if out.output_type == "stream" and out.name == "stdout":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data") and "text/plain" in out.data:
            if not set(out.data) & {"image/png", "application/vnd.jupyter.widget-view+json"}:
                parts.append(out.data["text/plain"])
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    text = "".join(parts)
    for regex, replace in SANITIZERS:
        text = regex.sub(replace, text)
    return text.splitlines()


def output_mismatches(committed, executed) -> list[str]:
    """Cells marked ``# NBVAL_CHECK_OUTPUT`` whose sanitized outputs differ."""
    problems = []
    for (i, want), (_, got) in zip(code_cells(committed), code_cells(executed)):
        if want.source.lstrip().startswith(CHECK_OUTPUT) and comparable(want) != comparable(got):
            problems.append(f"cell {i}: committed output {comparable(want)} but the run printed {comparable(got)}")
    return problems


def test_sanitizers_hide_addresses_timings_and_model_ids():
    cell = new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                           text="<Plot at 0x7f3a2b> 45%|##| 9/20 [00:01<00:02, 4.51it/s] "
                                                "model 0123456789abcdef0123456789abcdef took 1.5 s\n")]
    assert comparable(cell) == ["<Plot at 0xADDRESS> 45%|##| 9/20 [TQDM] model MODEL_ID took TIME"]


def test_output_comparison_catches_a_changed_marked_cell_only():
    def nb(marked_text, unmarked_text):
        cells = [new_code_cell(CHECK_OUTPUT + "\nprint(1)"), new_code_cell("print(2)")]
        for cell, text in zip(cells, (marked_text, unmarked_text)):
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        return new_notebook(cells=cells)

    assert output_mismatches(nb("1\n", "2\n"), nb("1\n", "anything\n")) == []
    assert output_mismatches(nb("1\n", "2\n"), nb("1.0\n", "2\n")) == ["cell 0: committed output ['1'] but the run printed ['1.0']"]


# ---------------------------------------------------------------- executed notebooks

@pytest.mark.notebook
@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_solution_notebook_runs_and_checked_outputs_match(path):
    tic = time.perf_counter()
    try:
        executed = execute_notebook(path, profile="fast", timeout=300)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} raised in the fast profile:\n{exc}")
    assert output_mismatches(nbformat.read(path, as_version=4), executed) == []
    print(f"{path.name}: {time.perf_counter() - tic:.1f} s")


@pytest.mark.notebook
@pytest.mark.parametrize("path", STUDENT, ids=ids(STUDENT))
def test_student_notebook_fails_only_at_its_checks(path):
    executed = execute_notebook(path, profile="fast", timeout=300, allow_errors=True)
    checks = {i for i, cell in code_cells(executed) if is_check_cell(cell.source)}
    failed = {}
    for i, out in errors(executed):
        assert i in checks, f"cell {i} is not a check cell but raised {out.ename}: {out.evalue}"
        assert out.ename == "CheckFailure", f"check cell {i} raised {out.ename}: {out.evalue}"
        assert "not implemented" in out.evalue
        failed[i] = out
    assert checks, f"{path.name} has no check cell"
    assert set(failed) == checks, f"check cells {sorted(checks - set(failed))} passed without a solution"


# ---------------------------------------------------------------- committed files

def test_student_notebooks_are_the_release_of_the_solutions():
    problems = differences(ROOT / "solutions", ROOT / "notebooks")
    assert problems == [], "\n".join(problems) + "\nrun `make release`"


@pytest.mark.parametrize("path", COMMITTED, ids=ids(COMMITTED))
def test_no_saved_widget_state(path):
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata, "metadata.widgets stops k3d from rendering in JupyterLab"
    assert not [i for i, cell in enumerate(nb.cells) if "widgets" in cell.metadata]


@pytest.mark.parametrize("path", COMMITTED, ids=ids(COMMITTED))
def test_no_display_calls_on_plots(path):
    calls = [i for i, cell in code_cells(nbformat.read(path, as_version=4))
             if re.search(r"\.display\(\s*\)", cell.source)]
    assert calls == [], f"cells {calls} call .display(): make the plot the cell's last expression"


@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_solutions_are_committed_executed_and_follow_the_conventions(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    cells = [c for _, c in code_cells(nb) if c.source.strip()]
    assert "runtime.seed_everything(" in cells[0].source and "runtime.describe()" in cells[0].source, \
        "the first code cell seeds and prints runtime.describe()"
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), \
        f"run `coursekit execute --profile fast --inplace {path.relative_to(ROOT)}` (execution counts {counts})"


# ---------------------------------------------------------------- the execute and tour commands

def tiny_notebook(*sources):
    return new_notebook(cells=[new_code_cell(s) for s in sources],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.mark.notebook
def test_execute_command_stores_outputs_without_widget_state(tmp_path, capsys):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(tiny_notebook(
        "import os\nfrom coursekit import runtime\nprint(runtime.profile(), os.path.basename(os.getcwd()))",
        "import ipywidgets as w\nw.interactive(lambda k: print(k), k=w.IntSlider(3))",  # an Output widget inside
    ), good)
    nbformat.write(tiny_notebook("print('before')", "1 / 0"), bad)
    before = bad.read_bytes()
    assert main(["execute", "--profile", "cpu", "--inplace", str(good), str(bad)]) == 1
    report = capsys.readouterr().out
    assert "ok " in report and "FAILED " in report and "ZeroDivisionError" in report
    assert bad.read_bytes() == before  # a failing notebook is left untouched
    nb = nbformat.read(good, as_version=4)
    assert nb.cells[0].outputs[0].text == f"cpu {tmp_path.name}\n"  # profile from the command, cwd = its folder
    assert nb.cells[1].outputs and "widgets" not in nb.metadata
    assert "execution" not in nb.cells[0].metadata  # no timing metadata: re-runs give the same file


@pytest.mark.notebook
def test_tour_writes_html_and_an_index(tmp_path):
    nbformat.write(tiny_notebook("print('hello from the tour')"), tmp_path / "01_tiny.ipynb")
    assert main(["tour", str(tmp_path), "--out", str(tmp_path / "tour")]) == 0
    page = (tmp_path / "tour" / "01_tiny.html").read_text()
    assert "hello from the tour" in page
    assert 'href="01_tiny.html"' in (tmp_path / "tour" / "index.html").read_text()
    assert nbformat.read(tmp_path / "01_tiny.ipynb", as_version=4).cells[0].outputs == []  # source untouched


def test_a_kernel_that_stops_answering_is_replaced_once(monkeypatch):
    from nbclient.exceptions import CellTimeoutError

    from coursekit import notebook_run

    calls = []

    def flaky(nb, env, cwd, timeout, allow_errors):
        calls.append(nb)
        if len(calls) == 1:
            nb.cells[0].outputs = ["half-run output that must not survive"]
            raise CellTimeoutError("Cell execution timed out")
        nb.cells[0].outputs = []

    monkeypatch.setattr(notebook_run, "_run_in_fresh_kernel", flaky)
    source = tiny_notebook("1 + 1")
    with pytest.warns(RuntimeWarning, match="stopped answering"):
        executed = notebook_run.execute_notebook(source)
    assert len(calls) == 2 and calls[0] is not calls[1] and executed.cells[0].outputs == []
    assert source.cells[0].get("outputs", []) == []  # the caller's notebook is untouched
    calls.clear()
    with pytest.raises(CellTimeoutError):
        notebook_run.execute_notebook(source, retries=0)
    assert len(calls) == 1


@pytest.mark.parametrize("lost_wakeup", [False, True])
def test_a_reply_whose_wakeup_is_lost_is_still_read(lost_wakeup):
    """The notebook runner's kernel channel finds a queued reply even when the socket's poll never reports it."""
    import asyncio
    from queue import Empty

    import zmq
    import zmq.asyncio
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.session import Session

    from coursekit.notebook_run import LevelCheckedChannel

    async def deaf_poll(timeout=None, flags=zmq.POLLIN):
        await asyncio.sleep((timeout or 0) / 1000)
        return 0

    async def receive(channel_class):
        context = zmq.asyncio.Context()
        sender, receiver = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
        sender.bind("inproc://reply"), receiver.connect("inproc://reply")
        if lost_wakeup:  # every wait ends without reporting the message, as when the edge is missed
            receiver.poll = deaf_poll
        session = Session()
        channel = channel_class(receiver, session)
        with pytest.raises(Empty):
            await channel.get_msg(timeout=0.2)
        session.send(sender, "execute_reply", {"status": "ok"})
        await asyncio.sleep(0.05)
        try:
            return (await channel.get_msg(timeout=2.5))["msg_type"]
        except Empty:
            return "nothing"
        finally:
            context.destroy(linger=0)

    assert asyncio.run(receive(LevelCheckedChannel)) == "execute_reply"
    assert asyncio.run(receive(AsyncZMQSocketChannel)) == ("nothing" if lost_wakeup else "execute_reply")
