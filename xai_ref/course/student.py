"""Student versions of the course assignments (``lessons/assignments/``), with or without nbgrader.

    python -m xai_ref.course make-student lessons/assignments student/     # one command
    python -m xai_ref.course verify lessons/assignments                    # stubs fail, solutions pass
    python -m xai_ref.course execute lessons/assignments                   # store outputs after an edit

The instructor notebooks follow nbgrader's conventions, so a teacher can also use nbgrader itself
(``nbgrader generate_assignment``, ``nbgrader autograde``):

* a solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in a cell whose metadata has
  ``nbgrader.solution = true``; the student version replaces it by
  ``# YOUR CODE HERE`` / ``raise NotImplementedError()``, indented like the marker, so the function's
  signature and docstring (written outside the markers) stay;
* hidden tests sit between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` in grade cells
  (``nbgrader.grade = true``, with ``points``); the student version removes them;
* outputs are cleared, and grade, solution and read-only cells are locked the way nbgrader locks them.

When nbgrader is importable its own preprocessors (``ClearSolutions``, ``ClearHiddenTests``,
``ClearOutput``, ``LockCells``) do the work; otherwise an equivalent built-in fallback does, giving
the same notebook. nbgrader is optional (``pip install "xai-ref[instructor]"``).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import re
from pathlib import Path

import nbformat

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"

__all__ = ["make_student", "make_student_dir", "solution_cells", "paste_solutions", "run", "execute_dir",
           "run_student_and_solution", "run_many", "grade_cells", "verify", "main", "has_nbgrader"]


def has_nbgrader() -> bool:
    """Whether nbgrader's preprocessors can be imported."""
    try:
        import nbgrader.preprocessors  # noqa: F401
    except ImportError:
        return False
    return True


# --- the built-in fallback: what nbgrader's preprocessors do, for notebooks like ours -------------


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_solution(cell) -> bool:
    return bool(_meta(cell).get("solution", False))


def _is_grade(cell) -> bool:
    return bool(_meta(cell).get("grade", False))


def _is_locked(cell) -> bool:
    m = _meta(cell)
    if not m or m.get("solution", False):
        return False
    return bool(m.get("grade", False) or m.get("locked", False))


def _replace_regions(source: str, begin: str, end: str, stub: list[str] | None, where: str) -> tuple[str, bool]:
    """Replace each begin..end region of `source` (marker lines included) by `stub` (None: delete it)."""
    out, inside, found = [], False, False
    for line in source.split("\n"):
        if begin in line:
            if inside:
                raise RuntimeError(f"nested {begin!r} markers in {where}")
            inside = found = True
            if stub is not None:
                indent = re.match(r"\s*", line).group(0)
                out += [indent + s for s in stub]
        elif end in line:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise RuntimeError(f"{begin!r} without a matching {end!r} in {where}")
    return "\n".join(out), found


def _fallback(nb):
    for i, cell in enumerate(nb.cells):
        where = f"cell {i} ({_meta(cell).get('grade_id', cell.get('id', '?'))})"
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        cell.source, replaced = _replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, stub.split("\n"), where)
        if replaced and not _is_solution(cell):
            raise RuntimeError(f"solution region in {where}, which is not a solution cell; set "
                               "metadata.nbgrader.solution = true")
        if _is_solution(cell) and not replaced:
            cell.source = stub
        cell.source, removed = _replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None, where)
        if removed and not _is_grade(cell):
            raise RuntimeError(f"hidden tests in {where}, which is not a grade cell; set "
                               "metadata.nbgrader.grade = true")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            for field in ("collapsed", "scrolled"):
                cell.metadata.pop(field, None)
        if _is_solution(cell):
            cell.metadata["deletable"] = False
        elif _is_grade(cell) or _is_locked(cell):
            cell.metadata["deletable"] = False
            cell.metadata["editable"] = False
    nb.metadata.pop("celltoolbar", None)
    return nb


def _with_nbgrader(nb):
    from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions, LockCells
    resources: dict = {}
    for pre in (ClearSolutions(), ClearHiddenTests(), ClearOutput(), LockCells()):
        nb, resources = pre.preprocess(nb, resources)
    return nb


def make_student(nb, use_nbgrader: bool | None = None):
    """The student version of one instructor notebook (a new NotebookNode; the argument is unchanged).

    use_nbgrader: True (require nbgrader), False (the built-in fallback) or None (nbgrader if importable).
    """
    nb = copy.deepcopy(nb)
    if use_nbgrader is None:
        use_nbgrader = has_nbgrader()
    return _with_nbgrader(nb) if use_nbgrader else _fallback(nb)


def _notebooks(src: Path) -> list[Path]:
    return sorted(p for p in Path(src).glob("*.ipynb") if not p.name.startswith("."))


def make_student_dir(src, out, use_nbgrader: bool | None = None) -> list[Path]:
    """Write the student version of every notebook in `src` to `out` (created); returns the paths."""
    src, out = Path(src), Path(out)
    books = _notebooks(src)
    if not books:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {src}")
    if src.resolve() == out.resolve():
        raise ValueError("OUT_DIR must differ from SRC_DIR: the student versions would overwrite the solutions")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in books:
        nb = make_student(nbformat.read(path, as_version=4), use_nbgrader)
        target = out / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


# --- checking that an assignment works: the stubs fail, the solutions pass -------------------------


def solution_cells(nb) -> dict[str, str]:
    """grade_id -> source of every solution cell of an instructor notebook."""
    return {_meta(c)["grade_id"]: c.source for c in nb.cells if _is_solution(c)}


def paste_solutions(student, instructor):
    """A copy of a student notebook with the instructor's solution cells put back (matched by grade_id)."""
    nb = copy.deepcopy(student)
    solutions = solution_cells(instructor)
    for c in nb.cells:
        if _is_solution(c):
            c.source = solutions[_meta(c)["grade_id"]]
    return nb


def run(nb, cwd=None, allow_errors: bool = False, timeout: int = 120, kernel_name: str = "python3"):
    """Execute a notebook with nbclient (a dev dependency) and return it with its outputs."""
    from nbclient import NotebookClient
    nb = copy.deepcopy(nb)
    NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=allow_errors, record_timing=False,
                   resources={"metadata": {"path": str(cwd or Path.cwd())}}).execute()
    return nb


def execute_dir(src, log=print) -> list[Path]:
    """Execute every instructor notebook in `src` in place (all checks must pass), storing its outputs
    without timing metadata: what `pytest --nbval` compares. Run after editing an assignment."""
    written = []
    for path in _notebooks(src):
        nb = run(nbformat.read(path, as_version=4), cwd=path.parent)
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nbformat.write(nb, path)
        written.append(path)
        log(f"executed {path}")
    return written


async def _run_pair(instructor, cwd, use_nbgrader, timeout, kernel_name, only_graded):
    from nbclient import NotebookClient
    student = make_student(instructor, use_nbgrader)
    solved = paste_solutions(student, instructor)
    client = NotebookClient(student, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                            record_timing=False, resources={"metadata": {"path": str(cwd or Path.cwd())}})
    async with client.async_setup_kernel():
        for i, cell in enumerate(student.cells):
            await client.async_execute_cell(cell, i)
        client.nb, client.allow_errors = solved, False
        for i, cell in enumerate(solved.cells):
            graded = _is_solution(cell) or _is_grade(cell) or _is_locked(cell)
            if cell.cell_type == "code" and (graded or not only_graded):
                await client.async_execute_cell(cell, i)
    return student, solved


def run_student_and_solution(instructor, cwd=None, use_nbgrader: bool | None = None, timeout: int = 120,
                             kernel_name: str = "python3", only_graded: bool = False):
    """Run the student version of `instructor` (errors allowed), then, in the same kernel, the student
    version with the solutions pasted back (errors not allowed: raises nbclient's CellExecutionError).
    One kernel start for both. Returns the two executed notebooks (student, solved).

    only_graded: in the second run, execute only the locked set-up cells, the solution cells and the
    grade cells (skipping the demonstrations, which take longer and are not graded)."""
    return asyncio.run(_run_pair(instructor, cwd, use_nbgrader, timeout, kernel_name, only_graded))


def run_many(paths, use_nbgrader: bool | None = None, timeout: int = 120, kernel_name: str = "python3",
             only_graded: bool = False, parallel: int | None = None) -> list:
    """run_student_and_solution for several instructor notebooks (paths), `parallel` kernels at a time
    (default: the number of CPUs). Returns, per path, (student, solved) or the exception it raised."""
    limit = asyncio.Semaphore(parallel or max(2, os.cpu_count() or 1))

    async def one(path):
        async with limit:
            return await _run_pair(nbformat.read(path, as_version=4), Path(path).parent, use_nbgrader, timeout,
                                   kernel_name, only_graded)

    async def all_of_them():
        return await asyncio.gather(*(one(p) for p in paths), return_exceptions=True)

    return asyncio.run(all_of_them())


def grade_cells(nb) -> list:
    return [c for c in nb.cells if _is_grade(c) and c.cell_type == "code"]


def _error(cell):
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


def verify(src, use_nbgrader: bool | None = None, log=print) -> bool:
    """For every instructor notebook in `src`: its student version runs with every grade cell failing
    ("not implemented yet"), and passes once the solutions are pasted back. Returns True if all do."""
    ok = True
    paths = _notebooks(src)
    for path, result in zip(paths, run_many(paths, use_nbgrader)):
        if isinstance(result, BaseException):
            ok = False
            log(f"{path.name}: the reference solution fails: {type(result).__name__}: {str(result)[-500:]}")
            continue
        student, _ = result
        for c in grade_cells(student):
            err = _error(c)
            if err is None or "not implemented yet" not in err.get("evalue", ""):
                ok = False
                log(f"{path.name}: grade cell {_meta(c)['grade_id']} does not fail on the stub as it should")
        log(f"{path.name}: {len(grade_cells(student))} graded cells fail on the stubs and pass with the solutions")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xai_ref.course",
                                     description="Make student versions of the xai-ref assignments.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-student", help="write the student version of every notebook in SRC_DIR to OUT_DIR")
    make.add_argument("src", metavar="SRC_DIR")
    make.add_argument("out", metavar="OUT_DIR")
    check = sub.add_parser("verify", help="check that the stubs fail and the solutions pass (runs the notebooks)")
    check.add_argument("src", metavar="SRC_DIR")
    execute = sub.add_parser("execute", help="re-execute the instructor notebooks in SRC_DIR in place, storing "
                                             "their outputs (after editing them)")
    execute.add_argument("src", metavar="SRC_DIR")
    for p in (make, check):
        g = p.add_mutually_exclusive_group()
        g.add_argument("--nbgrader", dest="use_nbgrader", action="store_true", default=None,
                       help="use nbgrader's preprocessors (fail if nbgrader is not installed)")
        g.add_argument("--no-nbgrader", dest="use_nbgrader", action="store_false",
                       help="use the built-in fallback even if nbgrader is installed")
    args = parser.parse_args(argv)
    if args.command == "execute":
        execute_dir(args.src)
        return 0
    if args.use_nbgrader and not has_nbgrader():
        parser.error('nbgrader is not installed: pip install "xai-ref[instructor]", or drop --nbgrader')
    if args.command == "make-student":
        written = make_student_dir(args.src, args.out, args.use_nbgrader)
        how = "nbgrader" if (args.use_nbgrader if args.use_nbgrader is not None else has_nbgrader()) else "built-in"
        print(f"wrote {len(written)} student notebooks to {args.out} ({how} preprocessors)")
        return 0
    return 0 if verify(args.src, args.use_nbgrader) else 1
