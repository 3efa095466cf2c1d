"""Course assignments from the chapters, made by nbgrader.

The chapters are the instructor version: every exercise is a code cell
whose solution sits between nbgrader's `### BEGIN SOLUTION` and
`### END SOLUTION` markers, with nbgrader cell metadata (`solution`,
`grade_id` "ex-<name>"), followed by a locked, graded cell that calls
`aelib.check.<name>(my_<name>)`. Open questions have their model answer in
a markdown cell marked as an nbgrader "manually graded answer".

nbgrader itself makes the student version (its `generate_assignment`), so
the notebooks a class receives are exactly what an nbgrader course
releases: each solution region becomes `# YOUR CODE HERE` /
`raise NotImplementedError()` under the exercise's `# Hint:` comment
(`aelib.check` then says which exercise is not done, with that hint), each
model answer becomes "YOUR ANSWER HERE", graded cells are locked.

    python -m aelib.assignments --out assignments    (make assignments)

checks the exercise format (with a message that says where and how to fix
it) and writes `assignments/instructor/NN_<chapter>.ipynb` (the chapter,
outputs cleared) and `assignments/student/NN_<chapter>.ipynb` (nbgrader's
release version, made without a gradebook);

    python -m aelib.assignments --course DIR

lays out an nbgrader course in DIR (`nbgrader_config.py` with the grading
settings, one assignment per chapter in `source/`), the starting point of
`nbgrader generate_assignment` and `autograde` (see the instructors' page).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE"
ANSWER_STUB = "YOUR ANSWER HERE"
HINT = "# Hint:"

#: The course's `nbgrader_config.py`: grading runs every chapter top to bottom with the settings
#: of the book's CI (quick mode, the digits shipped with scikit-learn, CPU), so every student's
#: notebook is graded on the same small run in about a minute; models are cached between students.
COURSE_CONFIG = """\
# nbgrader configuration of a course made from the Autoencoders book
# (python -m aelib.assignments --course DIR); see the book's page for instructors.
import os

c = get_config()
c.CourseDirectory.course_id = "autoencoders-book"
# Autograding runs a whole chapter; its training cells need more than nbgrader's 30 s a cell.
c.Execute.timeout = 1800

# The run every notebook is graded with: the settings of the book's CI (quick mode, the digits
# shipped with scikit-learn, the CPU). Export other values before `nbgrader autograde` to grade
# otherwise, e.g. AELIB_QUICK=0 for the full budget or AELIB_DATASET=mnist with AELIB_DATA_DIR.
for name, value in {"AELIB_QUICK": "1", "AELIB_DATASET": "digits", "AELIB_DEVICE": "cpu",
                    "AELIB_PROGRESS": "0"}.items():
    os.environ.setdefault(name, value)

# Feedback files give every figure the alt text that the book's website uses (screen readers).
c.GenerateFeedback.preprocessors = ["nbgrader.preprocessors.GetGrades",
                                    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
                                    "aelib.assignments.figure_alt_text"]
"""


class AssignmentError(ValueError):
    """A chapter's exercise cells do not follow the format above; the message says where."""


def _nbformat():
    try:
        import nbformat
    except ImportError:
        raise ImportError("aelib.assignments needs nbformat, part of the book's tools: "
                          "pip install -e '.[book]' (or run make assignments).") from None
    return nbformat


def default_book() -> Path:
    """The repository's `book/` folder next to this package (an editable install)."""
    return Path(__file__).resolve().parents[1] / "book"


def grading(cell: Any) -> dict:
    """The cell's nbgrader metadata, `{}` when it has none."""
    return dict(cell.get("metadata", {}).get("nbgrader", {}))


def exercise_name(cell: Any) -> str | None:
    """For a solution code cell, the checker's name (grade_id "ex-<name>"); else None."""
    meta = grading(cell)
    if cell["cell_type"] == "code" and meta.get("solution"):
        grade_id = str(meta.get("grade_id", ""))
        return grade_id.removeprefix("ex-") if grade_id.startswith("ex-") else grade_id
    return None


def hint_above(lines: list[str]) -> str | None:
    """The text of the `# Hint:` comment block that ends with the last of `lines`, or None.

    `lines` are a cell's lines up to the solution region (or, in a student's
    cell, up to the stub); `aelib.check` repeats the hint when the stub is
    still in place.
    """
    block: list[str] = []
    for line in reversed(lines):
        text = line.strip()
        if not text.startswith("#"):
            break
        block.insert(0, text.lstrip("#").strip())
        if text.startswith(HINT):
            return " ".join(block)[len("Hint:"):].strip()
    return None


def _hint(lines: list[str], where: str) -> str:
    """The `# Hint:` comment block that ends right above the BEGIN marker."""
    hint = hint_above(lines)
    if hint is not None:
        return hint
    raise AssignmentError(f"{where}: put a '{HINT} ...' comment right above '{BEGIN}'; it stays "
                          f"above the stub in the student version, and aelib.check repeats it.")


def figure_alt_text(nb: Any, resources: dict) -> tuple[Any, dict]:
    """nbconvert preprocessor: copy a figure cell's alt text (`mystnb.image.alt`, what the website
    shows) onto its image outputs, where HTML exports such as nbgrader's feedback look for it."""
    for cell in nb.cells:
        alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
        if cell.get("cell_type") != "code" or not alt:
            continue
        for output in cell.get("outputs", []):
            for mime in ("image/png", "image/jpeg", "image/svg+xml"):
                if mime in output.get("data", {}):
                    output.setdefault("metadata", {}).setdefault(mime, {}).setdefault("alt", alt)
    return nb, resources


def check_markers(source: str, where: str) -> int:
    """Check the solution regions of a cell (balanced markers, a hint above each); their number."""
    seen: list[str] = []
    inside, regions = False, 0
    for line in source.splitlines():
        text = line.strip()
        if text == BEGIN:
            if inside:
                raise AssignmentError(f"{where}: '{BEGIN}' inside another solution region.")
            _hint(seen, where)
            inside, regions = True, regions + 1
        elif text == END:
            if not inside:
                raise AssignmentError(f"{where}: '{END}' without a '{BEGIN}' before it.")
            inside = False
        elif not inside:
            seen.append(line)
    if inside:
        raise AssignmentError(f"{where}: '{BEGIN}' without a matching '{END}'.")
    if not regions:
        raise AssignmentError(f"{where}: a solution cell needs a '{BEGIN}' ... '{END}' region "
                              f"(nbgrader would otherwise replace the whole cell).")
    return regions


def _where(path: Path, cell: Any) -> str:
    return f"{path.name}, cell {cell.get('id', '?')}"


def exercises(nb: Any, path: Path) -> list[str]:
    """Checker names of the notebook's code exercises, in order, after checking the format."""
    from . import check

    names: list[str] = []
    cells = nb["cells"]
    for i, cell in enumerate(cells):
        where = _where(path, cell)
        if cell["cell_type"] == "markdown" and (BEGIN in cell["source"] or END in cell["source"]):
            raise AssignmentError(f"{where}: solution markers belong in code cells only; mark a "
                                  f"model answer with nbgrader metadata (solution: true) instead.")
        name = exercise_name(cell)
        if name is None:
            continue
        if name not in check.EXERCISES or not grading(cell).get("grade_id", "").startswith("ex-"):
            raise AssignmentError(f"{where}: grade_id {grading(cell).get('grade_id')!r} names no "
                                  f"checker in aelib.check; use 'ex-' + one of "
                                  f"{sorted(check.EXERCISES)}.")
        call = f"check.{name}(my_{name})"
        following = cells[i + 1] if i + 1 < len(cells) else None
        if following is None or call not in following["source"] or not grading(following).get("grade"):
            raise AssignmentError(f"{where}: the cell after an exercise must call {call} and be "
                                  f"an nbgrader test cell (grade: true, locked: true).")
        check_markers(cell["source"], where)
        names.append(name)
    return names


def chapters(book: Path | None = None) -> list[Path]:
    """The chapter notebooks (NN_<chapter>.ipynb) of the book, in order."""
    book = Path(book or default_book())
    found = sorted(book.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise AssignmentError(f"no chapter notebooks (NN_<chapter>.ipynb) in {book}; pass the "
                              f"book's folder with --book.")
    return found


def check_book(paths: list[Path]) -> dict[str, list[str]]:
    """Check every chapter's exercise format; {notebook: exercise names}. Grade ids are unique
    across the whole book, so one gradebook can hold every chapter."""
    nbformat = _nbformat()
    made: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        names = exercises(nb, path)
        if len(names) < 2:
            raise AssignmentError(f"{path.name} has {len(names)} code exercise(s); every chapter "
                                  f"needs at least 2.")
        for cell in nb.cells:
            grade_id = grading(cell).get("grade_id")
            if not grade_id:
                continue
            if grade_id in owner:
                raise AssignmentError(f"{_where(path, cell)}: grade_id {grade_id!r} is used "
                                      f"again (also in {owner[grade_id]}); every graded or "
                                      f"solution cell of the book needs its own.")
            owner[grade_id] = path.name
        made[path.name] = names
    return made


def make_course(root: Path, paths: list[Path]) -> dict[str, list[str]]:
    """Lay out an nbgrader course in `root`: `nbgrader_config.py` (COURSE_CONFIG) and each chapter
    as its own assignment (named like its notebook), `source/<chapter>/<chapter>.ipynb`. Checks
    the chapters first (`check_book`) and returns what it found, {notebook: exercise names}."""
    root = Path(root)
    made = check_book(paths)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "nbgrader_config.py"
    if not config.exists():
        config.write_text(COURSE_CONFIG, encoding="utf-8")
    for path in paths:
        folder = root / "source" / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / path.name)
    return made


def nbgrader(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run `nbgrader <args>` in the course folder `cwd` with this interpreter; its log.

    Fails with the log when nbgrader fails or warns (a metadata or checksum warning means a cell
    is not what nbgrader expects). The interpreter's folder leads PATH: nbgrader's gradebook
    calls the `alembic` command of its own environment.
    """
    try:
        import nbgrader as _  # noqa: F401
    except ImportError:
        raise ImportError("nbgrader is not installed: it makes the student notebooks and grades "
                          "them. Install the instructor tools with pip install -e '.[instructor]' "
                          "(make venv does).") from None
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                         capture_output=True, text=True)
    log = run.stdout + run.stderr
    trouble = [line for line in log.splitlines() if "| WARNING]" in line or "| ERROR]" in line]
    if run.returncode != 0 or trouble:
        raise AssignmentError(f"nbgrader {' '.join(args)} failed (exit {run.returncode}) in "
                              f"{cwd}:\n{log[-4000:]}")
    return log


def _write(nb: Any, path: Path) -> None:
    nbformat = _nbformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            nbformat.write(nb, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate(book: Path, out: Path) -> dict[str, list[str]]:
    """Write `out/student/*.ipynb` (nbgrader's release versions) and `out/instructor/*.ipynb`
    (the chapters, outputs cleared); return {notebook: exercise names}."""
    nbformat = _nbformat()
    paths = chapters(book)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="aelib-course-") as tmp:
        course = Path(tmp)
        made = make_course(course, paths)
        nbgrader("generate_assignment", "*", "--no-db", "--force", "--log-level=WARN",
                 f"--CourseDirectory.root={course}", cwd=course)
        for path in paths:
            student = nbformat.read(course / "release" / path.stem / path.name, as_version=4)
            instructor = nbformat.read(path, as_version=4)
            for cell in instructor.cells:
                if cell["cell_type"] == "code":
                    cell["outputs"], cell["execution_count"] = [], None
            _write(student, out / "student" / path.name)
            _write(instructor, out / "instructor" / path.name)
    return made


def solution_functions(book: Path | None = None) -> dict[str, Any]:
    """The book's reference solutions: {checker name: the `my_<name>` function of its cell}."""
    nbformat = _nbformat()
    found: dict[str, Any] = {}
    for path in sorted(Path(book or default_book()).glob("[0-9][0-9]_*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        # the names a solution may use are those the chapter imports in its set-up cell
        setup = next(c for c in cells if c.cell_type == "code" and "data.load(" in c.source)
        imports = "\n".join(line for line in setup.source.split("\n\n")
                            if line.startswith(("import ", "from ")))
        for cell in cells:
            name = exercise_name(cell)
            if name is None:
                continue
            namespace: dict[str, Any] = {}
            exec(compile(imports, f"{path.name}:set-up imports", "exec"), namespace)
            exec(compile(cell.source, f"{path.name}:{cell.get('id')}", "exec"), namespace)
            found[name] = namespace[f"my_{name}"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aelib.assignments", description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, default=Path("book"), help="folder of the chapter notebooks")
    parser.add_argument("--out", type=Path, default=Path("assignments"), help="where to write them")
    parser.add_argument("--course", type=Path, help="lay out an nbgrader course in this folder instead")
    args = parser.parse_args(argv)
    try:
        if args.course is not None:
            names = [Path(name).stem for name in make_course(args.course, chapters(args.book))]
            print(f"course in {args.course}: nbgrader_config.py and {len(names)} assignments in "
                  f"source/ ({', '.join(names)}); next: cd {args.course} && nbgrader "
                  f"generate_assignment '*'")
            return 0
        made = generate(args.book, args.out)
    except AssignmentError as err:
        print(f"make assignments: {err}", file=sys.stderr)
        return 1
    total = sum(len(v) for v in made.values())
    for name, names in made.items():
        print(f"  {name}: {len(names)} exercises ({', '.join(names)})")
    print(f"wrote {len(made)} student and {len(made)} instructor notebooks with {total} code "
          f"exercises to {args.out}/student and {args.out}/instructor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
