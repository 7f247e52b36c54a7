"""Record each chapter's wall time, peak memory and the share of its time spent training.

Usage: python benchmarks/peak_memory.py [--profile cpu] [--limit-gb 4] [--limit-seconds 300] [CHAPTER ...]

Each chapter listed in _toc.yml runs end to end in its own Jupyter kernel (through nbclient), so
its peak memory is measured alone. The peak is the kernel process's maximum RSS, read from
/proc by polling psutil every 0.2 s. Where the time goes: a cell run before the chapter's first
cell wraps ``tlcourse.train.fit`` and ``tlcourse.train.predict`` (the book's one training loop and
its one loop over a loader) with timers, and a cell run after its last reads them, so each
chapter's seconds split into training steps (inside ``fit``, data loading included), validation
inside ``fit``, other passes over data (``predict``, ``evaluate``, cached features) and everything
else (loading models and data, by-hand demonstrations, tables, plots). The timers add one
function call per ``fit`` or ``predict`` call. Results go to
benchmarks/results/peak_memory_<profile>.json; the exit status is 1 when a chapter is over either limit.

The same chapter takes very different times on different two-core machines (an AVX2 machine
and an AVX-512 one differed by 1.7x on the BERT chapter), and on one machine between hours. So the
run also records the processor's name and a reference workload, a fixed float32 matrix product
timed before the first chapter and after the last: chapter times from two runs compare only
together with their reference throughputs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import jupytext
import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from toc_notebooks import toc_files  # noqa: E402


TIMERS = """\
import time as _time, tlcourse.train as _train
_timing = {"fit": 0.0, "predict_in_fit": 0.0, "predict": 0.0, "inside_fit": 0}
_fit, _predict = _train.fit, _train.predict
def _timed_fit(*arguments, **keywords):
    _timing["inside_fit"] += 1; started = _time.perf_counter()
    try:
        return _fit(*arguments, **keywords)
    finally:
        _timing["fit"] += _time.perf_counter() - started; _timing["inside_fit"] -= 1
def _timed_predict(*arguments, **keywords):
    started = _time.perf_counter()
    try:
        return _predict(*arguments, **keywords)
    finally:
        _timing["predict_in_fit" if _timing["inside_fit"] else "predict"] += _time.perf_counter() - started
_train.fit, _train.predict = _timed_fit, _timed_predict
"""
REPORT = "import json as _json; print('TIMING ' + _json.dumps(_timing))"


def run_chapter(source: Path) -> tuple[float, float, dict[str, float]]:
    """Execute one chapter; return (seconds, peak resident memory in GB of its kernel, timers)."""
    notebook = jupytext.read(source)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(TIMERS))
    notebook.cells.append(nbformat.v4.new_code_cell(REPORT))
    client = NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}})
    peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            manager = client.km
            if manager is not None and manager.has_kernel and getattr(manager, "provisioner", None) is not None:
                pid = getattr(manager.provisioner, "pid", None)
                if pid:
                    try:
                        process = psutil.Process(pid)
                        rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
                        peak = max(peak, rss)
                    except psutil.Error:
                        pass
            time.sleep(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    started = time.perf_counter()
    watcher.start()
    try:
        client.execute()
    finally:
        done.set()
        watcher.join()
    seconds = time.perf_counter() - started
    printed = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    timing = json.loads(printed.split("TIMING ", 1)[1])
    return seconds, peak / 1e9, timing


def reference_gflops(size: int = 1024, repeats: int = 40) -> float:
    """Throughput of a ``size`` x ``size`` float32 matrix product on this process's torch threads.

    Args:
        size: rows and columns of both square factors.
        repeats: products timed (after three untimed ones that warm the caches and thread pool).

    Returns:
        Billions of floating-point operations per second (2 * size**3 per product).

    Example:
        >>> reference_gflops(size=64, repeats=2) > 0
        True
    """
    import torch

    if size < 1 or repeats < 1:
        raise ValueError(f"size and repeats must be at least 1, got size={size}, repeats={repeats}")
    first, second = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        first @ second
    started = time.perf_counter()
    for _ in range(repeats):
        first @ second
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def processor_name() -> str:
    """The processor's model name from /proc/cpuinfo (Linux), else what :mod:`platform` reports."""
    import platform

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def torch_threads() -> int:
    """Threads a chapter's kernel uses (torch's default: one per core unless OMP_NUM_THREADS says)."""
    return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--limit-gb", type=float, default=4.0)
    parser.add_argument("--limit-seconds", type=float, default=300.0, help="each chapter's time target")
    parser.add_argument("chapters", nargs="*", help="names such as book/concepts (default: all in _toc.yml)")
    arguments = parser.parse_args()
    os.environ["TLCOURSE_PROFILE"] = arguments.profile
    os.environ.setdefault("TLCOURSE_QUIET", "1")
    import yaml

    names = arguments.chapters or toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    reference_before = reference_gflops()
    print(f"{processor_name()}, {torch_threads()} threads: reference matrix product {reference_before:.0f} GFLOPS",
          flush=True)
    results = []
    for name in names:
        source = ROOT / (name if name.endswith(".md") else f"{name}.md")
        if "kernelspec:" not in source.read_text(encoding="utf-8")[:600]:
            continue  # plain Markdown page, nothing to run
        seconds, peak_gb, timing = run_chapter(source)
        training = timing["fit"] - timing["predict_in_fit"]
        shares = {"training_steps": training / seconds, "validation_in_fit": timing["predict_in_fit"] / seconds,
                  "other_passes_over_data": timing["predict"] / seconds,
                  "everything_else": 1 - (timing["fit"] + timing["predict"]) / seconds}
        within = {"memory": peak_gb <= arguments.limit_gb, "time": seconds <= arguments.limit_seconds}
        over = [limit for limit, kept in within.items() if not kept]
        results.append({"chapter": name, "profile": arguments.profile, "seconds": round(seconds, 1),
                        "peak_gb": round(peak_gb, 3), "within_memory": within["memory"],
                        "within_time": within["time"],
                        "share": {key: round(value, 3) for key, value in shares.items()},
                        "threads": torch_threads(), "load_average": round(os.getloadavg()[0], 2)})
        print(f"{name:<20} {seconds:7.1f} s  peak {peak_gb:5.2f} GB  "
              + ("OVER " + " AND ".join(over) if over else "ok") + "  "
              + "  ".join(f"{key} {value:.0%}" for key, value in shares.items()), flush=True)
    reference_after = reference_gflops()
    print(f"reference matrix product after the last chapter: {reference_after:.0f} GFLOPS", flush=True)
    machine = {"processor": processor_name(), "threads": torch_threads(),
               "reference_gflops_before": round(reference_before, 1),
               "reference_gflops_after": round(reference_after, 1)}
    out = ROOT / "benchmarks" / "results" / f"peak_memory_{arguments.profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "chapters": results}, indent=2))
    print(f"saved {out}")
    return 0 if all(r["within_memory"] and r["within_time"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
