"""Record each chapter's wall time and peak memory (resident set size) in a given profile.

Usage: python benchmarks/peak_memory.py [--profile cpu] [--limit-gb 4] [CHAPTER ...]

Each chapter listed in _toc.yml runs end to end in its own Jupyter kernel (through nbclient), so
its peak memory is measured alone. The peak is the kernel process's maximum RSS, read from
/proc by polling psutil every 0.2 s. Results go to benchmarks/results/peak_memory_<profile>.json.
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
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from toc_notebooks import toc_files  # noqa: E402


def run_chapter(source: Path) -> tuple[float, float]:
    """Execute one chapter; return (seconds, peak resident memory in GB of its kernel)."""
    notebook = jupytext.read(source)
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
    return time.perf_counter() - started, peak / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--limit-gb", type=float, default=4.0)
    parser.add_argument("chapters", nargs="*", help="names such as book/concepts (default: all in _toc.yml)")
    arguments = parser.parse_args()
    os.environ["TLCOURSE_PROFILE"] = arguments.profile
    os.environ.setdefault("TLCOURSE_QUIET", "1")
    import yaml

    names = arguments.chapters or toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    results = []
    for name in names:
        source = ROOT / (name if name.endswith(".md") else f"{name}.md")
        if "kernelspec:" not in source.read_text(encoding="utf-8")[:600]:
            continue  # plain Markdown page, nothing to run
        seconds, peak_gb = run_chapter(source)
        results.append({"chapter": name, "profile": arguments.profile, "seconds": round(seconds, 1),
                        "peak_gb": round(peak_gb, 3), "under_limit": peak_gb <= arguments.limit_gb})
        print(f"{name:<20} {seconds:7.1f} s  peak {peak_gb:5.2f} GB  {'ok' if peak_gb <= arguments.limit_gb else 'OVER LIMIT'}",
              flush=True)
    out = ROOT / "benchmarks" / "results" / f"peak_memory_{arguments.profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out}")
    return 0 if all(r["under_limit"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
