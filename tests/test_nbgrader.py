"""A course round trip through real nbgrader, as an instructor runs it.

`aelib.assignments.make_course` lays out a course (the `nbgrader_config.py`
that pins the grading run to the CI settings, one assignment per chapter),
then the nbgrader commands of the instructors' page run on it:
`generate_assignment`, three submissions in `submitted/`, `autograde`,
`generate_feedback`, and the scores read back from the gradebook.

- *untouched*: the release version as a student receives it. Every code
  exercise gets 0, the notebook still runs to the end (errors only in the
  check cells), the open questions wait for manual grading.
- *instructor*: the chapter itself. Full points for every check cell.
- *mistakes*: the release version with one plausible mistake per exercise
  (from the mutation cases of tests/test_check.py) typed in place of the
  stub. Every check cell gets 0, and the feedback shows the checker's
  explanation of that mistake.

CI grades one short chapter (`07_compression`, about 15 s a run in quick
mode); `make grade-check` sets `GRADE_CHAPTERS=all` and grades every
chapter. The scores table is written to `_build/grading/scores.md`.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from aelib import assignments, check
from test_check import WRONG

pytest.importorskip("nbgrader", reason="nbgrader (the instructor extra) is not installed")
from nbgrader.api import Gradebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
ALL = [p.stem for p in assignments.chapters(BOOK)]
_chosen = os.environ.get("GRADE_CHAPTERS", "07_compression")
GRADED = ALL if _chosen == "all" else _chosen.split(",")
STUDENTS = ("untouched", "instructor", "mistakes")

#: One mistake per exercise, typed into the book's solution: (text, replaced by, what the checker
#: says). Each says what one of the mutation cases of tests/test_check.py says.
MISTAKES = {
    "mse": ("((x_hat - x) ** 2).mean()", "((x_hat - x) ** 2).sum()", "you sum over every element"),
    "train_step": ("    optimizer.zero_grad()\n", "",
                   "optimizer.zero_grad() before loss.backward()"),
    "bce": ("-(x * log_p + (1 - x) * log_q).mean()", "-(x * log_p).mean()", "term is missing"),
    "pca": ("torch.linalg.svd(x - mean,", "torch.linalg.svd(x,", "from the uncentred data"),
    "principal_angles": ("return torch.arccos(cosines)", "return torch.rad2deg(torch.arccos(cosines))",
                         "in degrees"),
    "linear_autoencoder": ("nn.Linear(d, k, bias=False)", "nn.Linear(d, k)",
                           "your layers have biases"),
    "gaussian_noise": ("return (x + sigma * noise).clamp(0, 1)", "return x + sigma * noise",
                       "clip with .clamp(0, 1)"),
    "masking_noise": ("< fraction", ">= fraction", "you zeroed the pixels you should keep"),
    "denoising_objective": ("((x_hat - x) ** 2).mean()", "((x_hat - x_noisy) ** 2).mean()",
                            "you compare the output with the noisy batch"),
    "l1_activity": ("h.abs().sum(dim=1)", "h.sum(dim=1)", "negative ones cancel positive ones"),
    "kl_sparsity": ("kl = on + off", "kl = on", "term is missing"),
    "sparse_objective": ("recon + weight * kl.sum()", "recon + kl.sum()", "without its weight"),
    "sigmoid_jacobian_norm": ("(h * (1 - h)) ** 2 @", "(h * (1 - h)) @", "h (1 - h) is not squared"),
    "encoder_jacobian": ("torch.stack(rows, dim=1)", "torch.stack(rows, dim=2)",
                         "your Jacobians are transposed"),
    "contractive_objective": ("(h * (1 - h)) ** 2 @", "(h * (1 - h)) @", "h (1 - h) is not squared"),
    "gaussian_kl": ("logvar.exp() - 1 - logvar)", "logvar.exp() - 1)", "-logvar) is missing"),
    "reparameterize": ("torch.exp(0.5 * logvar)", "torch.exp(logvar)",
                       "you used exp(logvar), the variance"),
    "vae_loss": ("(recon + kl).mean()", "recon.mean()", "the KL term is missing"),
    "cosine_similarity": ("    b = b / b.norm(dim=1, keepdim=True)\n", "",
                          "only the queries are normalised"),
    "precision_at_k": ("hits.float().mean()", "hits.any(dim=1).float().mean()", "the hit rate"),
    "auroc": ("((diff > 0).double() + 0.5 * (diff == 0).double())", "(diff > 0).double()",
              "tied scores count as 0"),
    "gaussian_nll": ("quad + torch.logdet(cov) + k", "quad + k", "log det(cov) term is missing"),
    "quantize": ("torch.round(", "torch.floor(", "you truncate (floor) instead of rounding"),
    "psnr": ("torch.log10(1 / mse)", "torch.log(1 / mse)", "natural log"),
    "anomaly_threshold": (".flatten(1).mean(dim=1)", ".flatten(1).sum(dim=1)",
                          "the sum of each image's squared errors over its 64 pixels"),
}


def _region(source: str) -> str:
    """The lines between the solution markers of a chapter's exercise cell."""
    return source.split(assignments.BEGIN + "\n")[1].split(assignments.END)[0].rstrip()


def _with_mistake(name: str, region: str) -> str:
    old, new, _ = MISTAKES[name]
    assert region.count(old) == 1, (name, old)
    return region.replace(old, new)


def _answer(release_source: str, region: str) -> str:
    """What a student types: the stub's two lines replaced by `region` (already indented)."""
    stub = re.compile(rf"^[ \t]*{re.escape(assignments.CODE_STUB)}\n[ \t]*raise NotImplementedError\(\)",
                      re.M)
    assert len(stub.findall(release_source)) == 1
    return stub.sub(lambda _: region, release_source)


def _plain(text: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


# ----------------------------------------------------------------- fast checks, no nbgrader run

def test_every_exercise_has_a_mistake_that_its_checker_explains():
    """The typed mistakes are the mutation cases: each is rejected with that case's message."""
    assert set(MISTAKES) == set(check.EXERCISES)
    solutions = {}
    for chapter in ALL:
        for cell in nbformat.read(BOOK / f"{chapter}.ipynb", as_version=4).cells:
            name = assignments.exercise_name(cell)
            if name:
                solutions[name] = cell.source
    known = {name: {m for _, m in wrong if m} for name, wrong in WRONG.items()}
    for name, (_, _, message) in MISTAKES.items():
        assert message in known[name], (name, message)
        source = solutions[name].replace(_region(solutions[name]),
                                         _with_mistake(name, _region(solutions[name])))
        namespace: dict = {}
        exec("import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
             "from aelib import losses, metrics, models, train\n" + source,
             namespace)  # the imports of the chapters' first cells
        with pytest.raises(check.ExerciseFailed) as info:
            check.EXERCISES[name].checker(namespace[f"my_{name}"])
        assert message in str(info.value), (name, str(info.value))


# ----------------------------------------------------------------- the round trip

@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    env = dict(os.environ, AELIB_CACHE_DIR=str(tmp_path_factory.mktemp("grading-cache")))
    timings: dict[str, float] = {}
    assert assignments.main(["--book", str(BOOK), "--course", str(root)]) == 0  # every chapter
    names = GRADED
    for name in names:  # one call per assignment, as the instructors' page does
        assignments.nbgrader("generate_assignment", name, cwd=root, env=env)

    for name in names:
        release = nbformat.read(root / "release" / name / f"{name}.ipynb", as_version=4)
        source = nbformat.read(root / "source" / name / f"{name}.ipynb", as_version=4)
        mistakes = nbformat.read(root / "release" / name / f"{name}.ipynb", as_version=4)
        for cell, original in zip(mistakes.cells, source.cells, strict=True):
            exercise = assignments.exercise_name(original)
            if exercise:
                cell.source = _answer(cell.source, _with_mistake(exercise, _region(original.source)))
            elif assignments.grading(original).get("solution"):  # an open question, answered
                cell.source = "It depends on how many images share one decoder."
        for student, nb in zip(STUDENTS, (release, source, mistakes)):
            folder = root / "submitted" / student / name
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{name}.ipynb")

    for name in names:
        start = time.perf_counter()
        assignments.nbgrader("autograde", name, cwd=root, env=env)
        timings[name] = time.perf_counter() - start
        assignments.nbgrader("generate_feedback", name, cwd=root, env=env)
    assignments.nbgrader("export", cwd=root, env=env)
    yield root, names, timings


def _graded_cells(root: Path, name: str):
    nb = nbformat.read(root / "source" / name / f"{name}.ipynb", as_version=4)
    checks = {assignments.grading(c)["grade_id"]: assignments.grading(c)["points"]
              for c in nb.cells if assignments.grading(c).get("grade_id", "").startswith("check-")}
    answers = {assignments.grading(c)["grade_id"]: assignments.grading(c)["points"]
               for c in nb.cells if assignments.grading(c).get("grade_id", "").startswith("answer-")}
    return checks, answers


def test_generate_assignment_locks_the_checks_and_stubs_every_exercise(course):
    root, names, _ = course
    for name in names:
        release = nbformat.read(root / "release" / name / f"{name}.ipynb", as_version=4)
        checks, _ = _graded_cells(root, name)
        locked = [c for c in release.cells if assignments.grading(c).get("grade_id") in checks]
        assert len(locked) == len(checks) >= 2
        assert all(c.metadata["editable"] is False for c in locked)
        stubs = [c for c in release.cells if "raise NotImplementedError()" in c.source]
        assert len(stubs) == len(checks)


def test_scores_read_back_from_the_gradebook(course):
    root, names, timings = course
    rows = ["| chapter | submission | " + " | ".join(["auto-graded score", "max", "manual (open)",
                                                      "autograde (3 submissions)"]) + " |",
            "| --- | --- | ---: | ---: | --- | ---: |"]
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id="autoencoders-book") as gb:
        for name in names:
            checks, answers = _graded_cells(root, name)
            for student in STUDENTS:
                scores = {gid: gb.find_grade(gid, name, name, student) for gid in [*checks, *answers]}
                for gid, points in checks.items():
                    grade = scores[gid]
                    assert grade.max_score == points
                    expected = points if student == "instructor" else 0
                    assert grade.auto_score == expected, (name, student, gid, grade.auto_score)
                for gid, points in answers.items():  # formgrade's view
                    grade = scores[gid]
                    assert grade.max_score == points
                    if student == "untouched":  # "YOUR ANSWER HERE" left as it is: 0, nobody reads it
                        assert grade.auto_score == 0 and not grade.needs_manual_grade
                    else:  # an answer waits for a person
                        assert grade.auto_score is None and grade.needs_manual_grade, (name, student)
                got = sum(scores[g].auto_score for g in checks)
                manual = ("0 (left blank)" if student == "untouched" else
                          f"{len(answers)} answer(s), {sum(answers.values()):g} points, to grade")
                rows.append(f"| {name} | {student} | {got:g} | {sum(checks.values()):g} | {manual} | "
                            f"{timings[name]:.0f} s |")
            # a grader's manual score is stored and counted, as in formgrade
            gid = next(iter(answers))
            grade = gb.find_grade(gid, name, name, "instructor")
            grade.manual_score = answers[gid]
            gb.db.commit()
            total = gb.find_submission_notebook(name, name, "instructor").score
            assert total == sum(checks.values()) + answers[gid]
    table = "\n".join(rows)
    out = ROOT / "_build" / "grading"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)


def test_export_writes_every_students_total(course):
    import csv

    root, names, _ = course
    with open(root / "grades.csv", newline="") as fh:
        rows = {(r["assignment"], r["student_id"]): float(r["score"]) for r in csv.DictReader(fh)}
    for name in names:
        checks, _ = _graded_cells(root, name)
        assert rows[(name, "untouched")] == rows[(name, "mistakes")] == 0
        assert rows[(name, "instructor")] >= sum(checks.values())  # + a manual score, once given


def test_every_submission_runs_to_the_end_with_errors_only_in_check_cells(course):
    root, names, _ = course
    for name in names:
        checks, _ = _graded_cells(root, name)
        for student in STUDENTS:
            nb = nbformat.read(root / "autograded" / student / name / f"{name}.ipynb", as_version=4)
            code = [c for c in nb.cells if c.cell_type == "code"
                    and "skip-execution" not in c.metadata.get("tags", [])]  # the widget cells
            assert all(c.execution_count for c in code), (name, student)  # no cell skipped
            failed = {assignments.grading(c).get("grade_id") for c in code
                      if any(o.output_type == "error" for o in c.outputs)}
            assert failed == (set() if student == "instructor" else set(checks)), (name, student)


def test_feedback_explains_each_mistake_and_each_missing_exercise(course):
    root, names, _ = course
    for name in names:
        nb = nbformat.read(root / "source" / name / f"{name}.ipynb", as_version=4)
        exercises = [assignments.exercise_name(c) for c in nb.cells if assignments.exercise_name(c)]
        mistakes = _plain((root / "feedback" / "mistakes" / name / f"{name}.html").read_text())
        untouched = _plain((root / "feedback" / "untouched" / name / f"{name}.html").read_text())
        for exercise in exercises:
            ex = check.EXERCISES[exercise]
            assert f"Exercise {ex.number} ({ex.title})" in mistakes
            assert _plain(MISTAKES[exercise][2]) in mistakes, (name, exercise)
            assert f"Exercise {ex.number} ({ex.title}) is not done yet" in untouched
        instructor = _plain((root / "feedback" / "instructor" / name / f"{name}.html").read_text())
        assert "ExerciseFailed" not in instructor and "NotImplementedError" not in instructor
        assert all(f"✓ Exercise {check.EXERCISES[e].number}" in instructor for e in exercises)


def test_make_assignments_student_notebooks_are_nbgraders_release(course, tmp_path):
    """`make assignments` (no gradebook) and a course's `generate_assignment` agree cell for cell."""
    root, names, _ = course
    book = tmp_path / "book"  # the chapters as the course got them
    book.mkdir()
    for name in ALL:
        shutil.copyfile(root / "source" / name / f"{name}.ipynb", book / f"{name}.ipynb")
    assignments.generate(book, tmp_path / "out")
    for name in names:
        ours = nbformat.read(tmp_path / "out" / "student" / f"{name}.ipynb", as_version=4)
        release = nbformat.read(root / "release" / name / f"{name}.ipynb", as_version=4)
        assert len(ours.cells) == len(release.cells)
        for a, b in zip(ours.cells, release.cells):
            assert (a.cell_type, a.source, a.metadata) == (b.cell_type, b.source, b.metadata)
