"""Build the graded assignments with otter-grader, and grade a submission locally.

Each master is a MyST notebook, ``assignments/<chapter>.md``, in otter-grader's assign format (an
``# ASSIGNMENT CONFIG`` raw cell, ``# BEGIN QUESTION`` / ``# BEGIN SOLUTION`` / ``# BEGIN TESTS``
blocks, hidden tests marked in their test config). ``build`` converts it to ``.ipynb`` with jupytext
and runs ``otter assign`` into ``<output>/<chapter>/``: ``student/<chapter>.ipynb`` to hand out,
``autograder/<chapter>.ipynb`` (the solution) and ``autograder/<chapter>-autograder.zip`` to grade
with ``otter run -a <zip> <submission.ipynb>``.

    python tools/assignments.py build [chapter ...] [--output _build/assignments]
    python tools/assignments.py grade <submission.ipynb> <autograder.zip>
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
MASTERS = ROOT / "assignments"
# One assignment per course chapter, in the course's order (the sessions of book/course.md).
CHAPTERS = ("concepts", "math", "vgg16", "bert", "peft", "fusion")


def master_path(chapter: str) -> pathlib.Path:
    """The master notebook's source, ``assignments/<chapter>.md``."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {', '.join(CHAPTERS)}, got {chapter!r}")
    return MASTERS / f"{chapter}.md"


def build(chapter: str, output: pathlib.Path, run_tests: bool = True) -> pathlib.Path:
    """Run ``otter assign`` on one master into ``output/<chapter>``; return the autograder zip.

    ``run_tests``: otter assign also grades the solution with every test, and fails if one fails.
    """
    import jupytext
    import otter.assign

    result = pathlib.Path(output).resolve() / chapter
    shutil.rmtree(result, ignore_errors=True)
    with tempfile.TemporaryDirectory() as folder:
        master = pathlib.Path(folder) / f"{chapter}.ipynb"
        jupytext.write(jupytext.read(master_path(chapter)), master)
        otter.assign.main(str(master), str(result), no_pdfs=True, no_run_tests=not run_tests)
    zips = sorted((result / "autograder").glob(f"{chapter}-autograder_*.zip"))
    if len(zips) != 1:
        raise RuntimeError(f"otter assign wrote {len(zips)} autograder zips for {chapter}, expected 1")
    # otter names the zip with a timestamp; one stable name is easier to give a grader
    return zips[0].rename(result / "autograder" / f"{chapter}-autograder.zip")


def grade(submission: pathlib.Path, autograder: pathlib.Path) -> dict[str, tuple[float, float]]:
    """Grade one notebook with otter's local grader: ``{question: (score, possible)}``."""
    import otter.api

    results = otter.api.grade_submission(str(submission), str(autograder), quiet=True)
    return {name: (result.score, result.possible) for name, result in results.results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="otter assign every master (or the chapters named)")
    build_parser.add_argument("chapters", nargs="*", default=list(CHAPTERS))
    build_parser.add_argument("--output", type=pathlib.Path, default=ROOT / "_build" / "assignments")
    grade_parser = commands.add_parser("grade", help="grade one submission locally")
    grade_parser.add_argument("submission", type=pathlib.Path)
    grade_parser.add_argument("autograder", type=pathlib.Path)
    arguments = parser.parse_args(argv)
    if arguments.command == "build":
        for chapter in arguments.chapters:
            autograder = build(chapter, arguments.output)
            print(f"{chapter}: {autograder.parent.parent}")
        return 0
    for question, (score, possible) in grade(arguments.submission, arguments.autograder).items():
        print(f"{question}: {score:g} / {possible:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
