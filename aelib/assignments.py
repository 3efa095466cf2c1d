"""Course assignments from the chapters: student and instructor notebooks.

The chapters are the instructor version: every exercise is a code cell
whose solution sits between nbgrader's `### BEGIN SOLUTION` and
`### END SOLUTION` markers, with nbgrader cell metadata (`solution`,
`grade_id` "ex-<name>"), followed by a locked, graded cell that calls
`aelib.check.<name>(my_<name>)`. Open questions have their model answer in
a markdown cell marked as an nbgrader solution. A course can therefore run
`book/` through nbgrader directly; without nbgrader,

    python -m aelib.assignments --book book --out assignments   (make assignments)

writes `assignments/instructor/NN_<chapter>.ipynb` (the chapter, outputs
cleared) and `assignments/student/NN_<chapter>.ipynb`, where each solution
region becomes a stub that raises `NotImplementedError` with the exercise's
hint (the `# Hint:` comment above the region) and each model answer becomes
"YOUR ANSWER HERE", as nbgrader's own `ClearSolutions` does.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE"
ANSWER_STUB = "YOUR ANSWER HERE"
HINT = "# Hint:"


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


def _hint(lines: list[str], where: str) -> str:
    """The `# Hint:` comment block that ends right above the BEGIN marker."""
    block: list[str] = []
    for line in reversed(lines):
        text = line.strip()
        if not text.startswith("#"):
            break
        block.insert(0, text.lstrip("#").strip())
        if text.startswith(HINT):
            return " ".join(block)[len("Hint:"):].strip()
    raise AssignmentError(f"{where}: put a '{HINT} ...' comment right above '{BEGIN}'; the "
                          f"student version raises it as the stub's message.")


def stub_source(source: str, where: str, message: str = "") -> str:
    """`source` with every solution region replaced by a stub raising NotImplementedError."""
    out: list[str] = []
    inside, regions = False, 0
    for line in source.splitlines():
        text = line.strip()
        if text == BEGIN:
            if inside:
                raise AssignmentError(f"{where}: '{BEGIN}' inside another solution region.")
            inside, regions = True, regions + 1
            indent = line[: len(line) - len(line.lstrip())]
            hint = _hint(out, where)
            text_msg = f"{message} Hint: {hint}".strip()
            out += [indent + CODE_STUB, f"{indent}raise NotImplementedError({text_msg!r})"]
        elif text == END:
            if not inside:
                raise AssignmentError(f"{where}: '{END}' without a '{BEGIN}' before it.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise AssignmentError(f"{where}: '{BEGIN}' without a matching '{END}'.")
    if not regions:
        raise AssignmentError(f"{where}: a solution cell needs a '{BEGIN}' ... '{END}' region "
                              f"(nbgrader would otherwise replace the whole cell).")
    return "\n".join(out)


def _clear(cell: Any) -> None:
    if cell["cell_type"] == "code":
        cell["outputs"], cell["execution_count"] = [], None


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
        stub_source(cell["source"], where)  # the markers are well formed
        names.append(name)
    return names


def make_versions(path: Path) -> tuple[Any, Any, list[str]]:
    """`(student, instructor, exercise names)` for one chapter notebook."""
    from . import check

    nbformat = _nbformat()
    nb = nbformat.read(path, as_version=4)
    names = exercises(nb, path)
    instructor = copy.deepcopy(nb)
    for cell in instructor.cells:
        _clear(cell)
    student = copy.deepcopy(instructor)
    for cell in student.cells:
        meta = grading(cell)
        if not meta.get("solution"):
            continue
        if cell["cell_type"] == "code":
            ex = check.EXERCISES[exercise_name(cell)]
            cell["source"] = stub_source(cell["source"], _where(path, cell),
                                         f"Exercise {ex.number} ({ex.title}) is not done yet.")
            tags = [t for t in cell["metadata"].pop("tags", []) if t != "hide-input"]
            if tags:
                cell["metadata"]["tags"] = tags
            cell["metadata"].pop("mystnb", None)  # the website's "Show solution" prompt
        else:
            cell["source"] = ANSWER_STUB
    return student, instructor, names


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
    """Write `out/student/*.ipynb` and `out/instructor/*.ipynb`; return {notebook: exercise names}."""
    book, out = Path(book), Path(out)
    chapters = sorted(book.glob("[0-9][0-9]_*.ipynb"))
    if not chapters:
        raise AssignmentError(f"no chapter notebooks (NN_<chapter>.ipynb) in {book}; pass the "
                              f"book's folder with --book.")
    made: dict[str, list[str]] = {}
    for path in chapters:
        student, instructor, names = make_versions(path)
        if len(names) < 2:
            raise AssignmentError(f"{path.name} has {len(names)} code exercise(s); every chapter "
                                  f"needs at least 2.")
        _write(student, out / "student" / path.name)
        _write(instructor, out / "instructor" / path.name)
        made[path.name] = names
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
    args = parser.parse_args(argv)
    try:
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
