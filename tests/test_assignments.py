"""`make assignments`: student and instructor notebooks from the chapters.

The instructor version is the chapter with outputs cleared, so nbval's run
of `book/*.ipynb` in `make test` is its run. The student version is
nbgrader's release version (`generate_assignment`); it differs only in the
exercise cells (stubs) and the model answers, so a student notebook with
the reference solutions pasted back is the instructor notebook. Each
generated student notebook stops first at the first exercise's check, which
names the exercise and repeats its hint: everything before that exercise is
the chapter's own code, unchanged (asserted), which nbval runs; here a
kernel runs the set-up cell, the stub and its check.
The whole round trip through nbgrader's gradebook is tests/test_nbgrader.py.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from aelib import assignments, check

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(p.name for p in BOOK.glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignments")
    made = assignments.generate(BOOK, out)
    return out, made


def test_every_chapter_gets_both_versions_with_two_exercises_or_more(generated):
    out, made = generated
    assert sorted(made) == CHAPTERS
    for name in CHAPTERS:
        assert (out / "instructor" / name).exists()
        student = nbformat.read(out / "student" / name, as_version=4)
        stubs = [c for c in student.cells if c.cell_type == "code"
                 and f"{assignments.CODE_STUB}\n    raise NotImplementedError()" in c.source]
        assert len(stubs) >= 2, name
    # every checker is an exercise exactly once
    assert sorted(n for names in made.values() for n in names) == sorted(check.EXERCISES)


def test_student_version_hides_every_solution(generated):
    out, _ = generated
    for name in CHAPTERS:
        book = nbformat.read(BOOK / name, as_version=4)
        student = nbformat.read(out / "student" / name, as_version=4)
        for b, s in zip(book.cells, student.cells, strict=True):
            meta = assignments.grading(b)
            assert all(not c.get("outputs") for c in [s] if c.cell_type == "code")
            if not meta.get("solution"):
                assert s.source == b.source
                continue
            assert assignments.BEGIN not in s.source and assignments.END not in s.source
            if b.cell_type == "markdown":
                assert s.source == assignments.ANSWER_STUB
            else:
                region = b.source.split(assignments.BEGIN)[1].split(assignments.END)[0]
                answer = region.strip().splitlines()[-1].strip()  # the line that returns
                assert answer not in s.source, (name, answer)
                hint = s.source.split(assignments.CODE_STUB)[0].splitlines()
                assert any(line.strip().startswith(assignments.HINT) for line in hint), name
            if meta.get("locked"):  # nbgrader locks the check cells
                assert s.metadata.get("editable") is False and s.metadata.get("deletable") is False


def test_reference_pasted_into_the_student_version_is_the_instructor_version(generated):
    out, _ = generated
    for name in CHAPTERS:
        student = nbformat.read(out / "student" / name, as_version=4)
        instructor = nbformat.read(out / "instructor" / name, as_version=4)
        book = nbformat.read(BOOK / name, as_version=4)
        for s, i, b in zip(student.cells, instructor.cells, book.cells, strict=True):
            assert i.source == b.source and i.cell_type == b.cell_type  # the executed chapter
            pasted = i.source if assignments.grading(s).get("solution") else s.source
            assert pasted == i.source


def test_solution_cells_are_hidden_on_the_website_and_checks_are_graded():
    for name in CHAPTERS:
        nb = nbformat.read(BOOK / name, as_version=4)
        for i, cell in enumerate(nb.cells):
            if assignments.exercise_name(cell) is None:
                continue
            assert "hide-input" in cell.metadata.get("tags", [])
            assert cell.metadata["mystnb"]["code_prompt_show"] == "Show solution"
            follow = assignments.grading(nb.cells[i + 1])
            assert follow["grade"] and follow["locked"] and follow["points"] >= 1


@pytest.mark.parametrize("name", CHAPTERS)
def test_student_notebook_stops_first_at_the_first_exercise(generated, name):
    out, made = generated
    first = made[name][0]
    nb = nbformat.read(out / "student" / name, as_version=4)
    stop = next(i for i, c in enumerate(nb.cells) if assignments.grading(c).get("grade_id") == f"check-{first}")
    start = next(i for i, c in enumerate(nb.cells) if assignments.exercise_name(c) == first)
    # before the first exercise the student runs the chapter's code as it is (nbval runs it in
    # make test): so the kernel here needs only the set-up cell, then the stub and its check
    chapter = [c.source for c in nbformat.read(BOOK / name, as_version=4).cells if c.cell_type == "code"]
    before = [c for c in nb.cells[:start] if c.cell_type == "code"]
    assert [c.source for c in before] == chapter[:len(before)]
    setup = next(c for c in before if c.get("id") != "install-aelib")
    nb.cells = [setup, *nb.cells[start:stop + 1]]
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(BOOK)}})
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    text = str(info.value)
    assert "NotImplementedError" in text, text[-2000:]
    number = check.EXERCISES[first].number
    said = f"Exercise {number} ({check.EXERCISES[first].title}) is not done yet: my_{first} "
    assert said in text, text[-2000:]
    cell = next(c for c in nb.cells if assignments.exercise_name(c) == first)
    hint = next(line for line in cell.source.splitlines() if assignments.HINT in line)
    assert "Hint: " + hint.split(assignments.HINT)[1].strip() in text  # read from the cell
    assert f"check.{first}(my_{first})" in text  # it failed in the check cell, not before
    executed = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    assert executed[-1].source == f"check.{first}(my_{first})"


def _nb(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


def test_malformed_exercises_are_refused_with_the_place_and_the_fix(tmp_path):
    meta = {"nbgrader": {"solution": True, "grade": False, "grade_id": "ex-mse", "locked": False}}
    graded = {"nbgrader": {"grade": True, "grade_id": "check-mse", "locked": True, "points": 1,
                           "solution": False}}
    ok = "def my_mse(x_hat, x):\n    # Hint: square.\n    ### BEGIN SOLUTION\n    return 0\n    ### END SOLUTION"
    bad = {
        "without a matching": ok.replace("    ### END SOLUTION", ""),
        "without a '### BEGIN SOLUTION' before it": "# Hint: h\n### END SOLUTION",
        "inside another solution region": ok.replace("return 0", "### BEGIN SOLUTION"),
        "put a '# Hint: ...' comment": ok.replace("    # Hint: square.\n", ""),
        "needs a '### BEGIN SOLUTION'": "def my_mse(x_hat, x):\n    return 0",
    }
    for message, source in bad.items():
        cell = nbformat.v4.new_code_cell(source, metadata=meta)
        with pytest.raises(assignments.AssignmentError, match=message):
            assignments.exercises(_nb(cell, nbformat.v4.new_code_cell("check.mse(my_mse)", metadata=graded)),
                                  tmp_path / "01_x.ipynb")
    cell = nbformat.v4.new_code_cell(ok, metadata=meta)
    with pytest.raises(assignments.AssignmentError, match=r"must call check\.mse\(my_mse\)"):
        assignments.exercises(_nb(cell, nbformat.v4.new_code_cell("print(1)")), tmp_path / "01_x.ipynb")
    with pytest.raises(assignments.AssignmentError, match="names no checker"):
        other = dict(meta, nbgrader=dict(meta["nbgrader"], grade_id="ex-nope"))
        assignments.exercises(_nb(nbformat.v4.new_code_cell(ok, metadata=other)), tmp_path / "x.ipynb")
    with pytest.raises(assignments.AssignmentError, match="code cells only"):
        assignments.exercises(_nb(nbformat.v4.new_markdown_cell("### BEGIN SOLUTION")), tmp_path / "x.ipynb")


def test_a_grade_id_used_twice_in_the_book_is_refused(tmp_path):
    first, second = (BOOK / CHAPTERS[0], BOOK / CHAPTERS[1])
    copy = tmp_path / second.name
    nb = nbformat.read(second, as_version=4)
    taken = next(assignments.grading(c)["grade_id"] for c in nbformat.read(first, as_version=4).cells
                 if assignments.grading(c).get("grade_id", "").startswith("answer-"))
    cell = next(c for c in nb.cells if assignments.grading(c).get("grade_id", "").startswith("answer-"))
    cell.metadata["nbgrader"]["grade_id"] = taken
    nbformat.write(nb, copy)
    with pytest.raises(assignments.AssignmentError, match=f"grade_id '{taken}' is used again "
                                                          f"\\(also in {first.name}\\)"):
        assignments.check_book([first, copy])


def test_figure_alt_text_reaches_the_image_outputs_of_a_feedback_file():
    figure = nbformat.v4.new_code_cell("plot()", metadata={"mystnb": {"image": {"alt": "A curve."}}})
    figure.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBO", "text/plain": "<Figure>"}),
                      nbformat.v4.new_output("stream", text="done\n")]
    plain = nbformat.v4.new_code_cell("plot()")
    plain.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBO"})]
    nb, _ = assignments.figure_alt_text(_nb(figure, plain), {})
    assert nb.cells[0].outputs[0].metadata == {"image/png": {"alt": "A curve."}}
    assert "metadata" not in nb.cells[0].outputs[1]
    assert nb.cells[1].outputs[0].metadata == {}  # no alt text to give: nbconvert warns


def test_command_line_reports_a_wrong_folder(tmp_path, capsys):
    assert assignments.main(["--book", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "no chapter notebooks" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_instructor_guide_lists_every_exercise_with_its_points():
    import re

    guide = (BOOK / "instructors.md").read_text()
    rows = re.findall(r"\| (\d+\.\d+) `my_(\w+)` \| ([\w-]+) \| (\d) \|", guide)
    listed = {name: (number, int(points)) for number, name, _, points in rows}
    points = {}
    for name in CHAPTERS:
        for cell in nbformat.read(BOOK / name, as_version=4).cells:
            meta = assignments.grading(cell)
            if meta.get("grade_id", "").startswith("check-"):
                points[meta["grade_id"][len("check-"):]] = meta["points"]
    assert listed == {n: (ex.number, points[n]) for n, ex in check.EXERCISES.items()}
    questions = re.findall(r"\| (\d+\.\d+) [^|`]+ \| open question \| 2 \|", guide)
    assert len(questions) == len(CHAPTERS)
