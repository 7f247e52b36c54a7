"""Time the chapters' cpu execution at two commits, in one sitting, interleaved.

    python benchmarks/chapter_times.py BEFORE AFTER [--chapters concepts vgg16 ...]

Each commit is checked out into its own worktree (``git worktree add``). Every chapter is then
executed once per commit, alternating which commit goes first, with ``TLCOURSE_PROFILE=cpu``, the
worktree first on ``PYTHONPATH`` and a fresh, empty ``TLCOURSE_CACHE`` per run, as on a fresh
clone. A notebook is converted with jupytext and run with nbclient, the engine myst-nb uses. The
wall time, the kernel's CPU time and the load average before each run are written to
``benchmarks/results/chapter_times.csv``; the summary prints after/before per chapter and in total.
A run that fails is recorded with its error and left out of the ratios.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ("concepts", "math", "vgg16", "bert", "fusion", "peft")
RESULT = ROOT / "benchmarks" / "results" / "chapter_times.csv"
CPU_PROBE = ("import resource as _r, tlcourse as _t; _u = _r.getrusage(_r.RUSAGE_SELF); "
             "print(_u.ru_utime + _u.ru_stime, _t.__file__)")


def worktree(commit: str, folder: Path) -> Path:
    """A checkout of ``commit`` in ``folder`` (made once, reused after)."""
    if not (folder / ".git").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), commit], check=True,
                       capture_output=True)
    return folder


def run_chapter(tree: Path, chapter: str) -> tuple[float, float, str]:
    """Execute ``tree/book/<chapter>.md``; return (wall seconds, kernel CPU seconds, error or '')."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(tree / "book" / f"{chapter}.md")
    notebook.cells.append(nbformat.v4.new_code_cell(CPU_PROBE))
    with tempfile.TemporaryDirectory(prefix="tlcourse-cache-") as cache:
        os.environ.update(TLCOURSE_PROFILE="cpu", TLCOURSE_CACHE=cache, PYTHONPATH=str(tree),
                          PYDEVD_DISABLE_FILE_VALIDATION="1")
        client = NotebookClient(notebook, timeout=3600, kernel_name="python3",
                                resources={"metadata": {"path": str(tree / "book")}})
        start = time.perf_counter()
        try:
            client.execute()
        except Exception as error:  # noqa: BLE001 - recorded, the sitting goes on
            return time.perf_counter() - start, float("nan"), f"{type(error).__name__}: {str(error)[:200]}"
        wall = time.perf_counter() - start
    cpu, package = notebook.cells[-1].outputs[0]["text"].split()
    if not Path(package).resolve().is_relative_to(tree.resolve()):
        return wall, float(cpu), f"tlcourse came from {package}, not from {tree}"
    return wall, float(cpu), ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--chapters", nargs="+", default=list(CHAPTERS), choices=CHAPTERS)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tlcourse-chapter-times")
    args = parser.parse_args(argv)
    trees = {"before": worktree(args.before, args.workdir / "before"),
             "after": worktree(args.after, args.workdir / "after")}
    commits = {side: subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], check=True,
                                    capture_output=True, text=True).stdout.strip() for side, tree in trees.items()}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, chapter in enumerate(args.chapters):
        order = ("before", "after") if index % 2 == 0 else ("after", "before")
        for side in order:
            load = os.getloadavg()[0]
            wall, cpu, error = run_chapter(trees[side], chapter)
            rows.append({"chapter": chapter, "side": side, "commit": commits[side], "wall_s": round(wall, 1),
                         "cpu_s": round(cpu, 1), "load_before": round(load, 2), "error": error})
            print(f"{chapter:9} {side:6} {commits[side]} wall {wall:7.1f} s  cpu {cpu:7.1f} s  load {load:.2f} {error}",
                  flush=True)
            with RESULT.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    ok = [chapter for chapter in args.chapters
          if all(not row["error"] for row in rows if row["chapter"] == chapter)]
    totals = {"before": 0.0, "after": 0.0}
    for chapter in ok:
        wall = {row["side"]: row["wall_s"] for row in rows if row["chapter"] == chapter}
        totals["before"] += wall["before"]
        totals["after"] += wall["after"]
        print(f"{chapter:9} after/before {wall['after'] / wall['before']:.3f}")
    if ok:
        print(f"total     after/before {totals['after'] / totals['before']:.3f} "
              f"({totals['after']:.0f} s / {totals['before']:.0f} s)")
    return 0 if len(ok) == len(args.chapters) else 1


if __name__ == "__main__":
    sys.exit(main())
