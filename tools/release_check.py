"""Test the classroom kit as a teacher uses it: unpack, install from its wheelhouse only, run a chapter.

Usage: python tools/release_check.py [ARCHIVE] [--work _build/release-test] [--keep]
(ARCHIVE defaults to dist/transfer-learning-executable-<version>.tar.gz; `make release-test`.)

In an empty folder: ``tar -xzf`` the archive, ``sha256sum -c SHA256SUMS``, create a venv, then run the
README's steps 3 to 5 as written (tools/release.py makes the README and these commands from one
list), with the environment cleared: no pip configuration (``PIP_CONFIG_FILE=/dev/null``, no
``PIP_*`` variable, so neither this machine's indexes nor its find-links nor its constraints), an empty
``HOME`` (no model or data cache of this machine), ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``.
The venv loads a guard in every Python process (a ``.pth`` file): a socket connection to anything
but this machine, or a host name lookup, fails and is logged. The test fails if the doctor reports
a stand-in missing, the chapter fails, anything tried the network, or the kernel ran outside the
venv. The unpacked site's links are checked too (tools/check_site.py). The folder is removed after
a pass (it holds a full install, several GB) and kept after a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from release import ROOT, archive_stem, check_commands, install_commands, read_version

from tlcourse.assets import ASSETS

# Loaded by every Python process of the test venv through a .pth file: the network is off.
GUARD = '''"""The release test's network guard: connections beyond this machine fail, and are logged."""
import errno
import ipaddress
import os
import socket
import sys

_LOG = os.environ.get("RELEASE_TEST_NETWORK_LOG")
_LOCAL = {None, "", "localhost", "127.0.0.1", "::1", "0.0.0.0", socket.gethostname()}


def _record(line):
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {line}\\n")


def _is_local(host):
    host = host.decode() if isinstance(host, bytes) else host
    return host in _LOCAL or (isinstance(host, str) and host.startswith("127."))


def _blocked(what):
    _record(f"BLOCKED {what} from {' '.join(sys.orig_argv[1:3])}")
    return OSError(errno.ENETUNREACH, f"the release test blocks the network: {what}")


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise _blocked(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _blocked(f"connect_ex {address!r}")
        return errno.ENETUNREACH
    return _connect_ex(self, address)


def _is_address(host):
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
    except ValueError:
        return False
    return True


def getaddrinfo(host, *args, **kwargs):
    if not _is_local(host) and not _is_address(host):  # an address needs no lookup; connect decides
        _blocked(f"getaddrinfo {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, "the release test blocks name lookups")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
_record(f"LOADED {sys.executable} {' '.join(sys.orig_argv[1:4])}")  # orig_argv: sys.argv lacks -m's module yet
'''


def clean_environment(venv: Path, home: Path, network_log: Path) -> dict[str, str]:
    """The variables a lab machine's shell would have after step 2, and nothing of this machine's setup."""
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PIP_CONFIG_FILE": os.devnull,  # no pip.conf anywhere: no index, find-links or constraints of this machine
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TLCOURSE_OFFLINE": "1",
        "TLCOURSE_QUIET": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "RELEASE_TEST_NETWORK_LOG": str(network_log),
    }


def doctor_problems(report: str) -> list[str]:
    """The stand-ins the doctor's report does not list as ``available``."""
    lines = {line.split()[0]: line.split()[1] for line in report.splitlines()
             if line.startswith("  ") and len(line.split()) > 1}
    return [f"stand-in {name} is {lines.get(name, 'not listed')}, expected available"
            for name, asset in ASSETS.items() if not asset.canonical and lines.get(name) != "available"]


def network_problems(log: str, venv: Path) -> list[str]:
    """Blocked network attempts, and a kernel that did not run in the venv with the guard loaded."""
    problems = [line for line in log.splitlines() if " BLOCKED " in line]
    kernels = [line for line in log.splitlines() if " LOADED " in line and "ipykernel_launcher" in line]
    if not any(f" LOADED {venv}/" in line for line in kernels):
        problems.append(f"no Jupyter kernel ran in {venv} with the network guard loaded (kernels seen: {kernels})")
    return problems


def notebook_errors(path: Path) -> list[str]:
    """The error outputs of an executed notebook."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [f"{output.get('ename')}: {output.get('evalue')}" for cell in notebook["cells"]
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def check(archive: Path, work: Path, keep: bool) -> int:
    """Run the whole test; return the exit status (0: every step passed)."""
    version = read_version(ROOT / "pyproject.toml")
    stem = archive_stem(version)
    if not archive.is_file():
        raise ValueError(f"archive must be the release archive (make release writes it), got {str(archive)!r}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    folder, home, log = work / stem, work / "home", work / "network.log"
    venv = folder / ".venv"
    home.mkdir()
    timings: dict[str, float] = {}

    def step(name: str, command: list[str] | str, **kwargs) -> subprocess.CompletedProcess:
        print(f"release-test: {name}", flush=True)
        start = time.perf_counter()
        result = subprocess.run(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)
        timings[name] = time.perf_counter() - start
        if result.returncode != 0:
            print(result.stdout[-6000:])
            raise RuntimeError(f"{name} failed (exit {result.returncode}); the folder is kept: {work}")
        return result

    step("unpack (tar -xzf)", ["tar", "-xzf", str(archive.resolve()), "-C", str(work)])
    step("checksums (sha256sum -c SHA256SUMS)", ["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=folder)
    step("step 2: venv", [getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)],
         env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    (site_packages / "_release_test_guard.py").write_text(GUARD, encoding="utf-8")
    (site_packages / "_release_test_guard.pth").write_text("import _release_test_guard\n", encoding="utf-8")
    env = clean_environment(venv, home, log)
    for number, command in enumerate(install_commands(version), 1):
        step(f"step 3.{number}: {command}", ["bash", "-c", command], cwd=folder, env=env)
    doctor_command, chapter_command = check_commands()
    doctor = step(f"step 4: {doctor_command}", ["bash", "-c", doctor_command], cwd=folder, env=env).stdout
    print(doctor)
    step(f"step 5: {chapter_command}", ["bash", "-c", chapter_command], cwd=folder, env=env)
    executed = next((folder / "notebooks" / "executed").glob("*-smoke.ipynb"))
    step("the unpacked site's links (tools/check_site.py --links-only)",
         [sys.executable, str(ROOT / "tools" / "check_site.py"), "--links-only", str(folder / "site")])

    problems = doctor_problems(doctor) + [f"{executed.name}: {error}" for error in notebook_errors(executed)]
    problems += network_problems(log.read_text(encoding="utf-8") if log.is_file() else "", venv)
    for name, seconds in timings.items():
        print(f"release-test: {seconds:7.1f} s  {name}")
    print(f"release-test: {sum(timings.values()):7.1f} s  in all; the install is {_size(venv) / 1e9:.1f} GB")
    if problems:
        print("release-test: FAILED\n  " + "\n  ".join(problems) + f"\nthe folder is kept: {work}")
        return 1
    processes = sum(" LOADED " in line for line in log.read_text(encoding="utf-8").splitlines())
    print(f"release-test: passed ({processes} Python processes ran with the network guard, none tried the network)")
    if not keep:
        shutil.rmtree(work)
    return 0


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the test; an error is one line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    default = ROOT / "dist" / f"{archive_stem(read_version(ROOT / 'pyproject.toml'))}.tar.gz"
    parser.add_argument("archive", nargs="?", default=str(default), help=f"default: {default.relative_to(ROOT)}")
    parser.add_argument("--work", default=str(ROOT / "_build" / "release-test"),
                        help="emptied, then used (default: _build/release-test)")
    parser.add_argument("--keep", action="store_true", help="keep the folder after a pass too")
    arguments = parser.parse_args(argv)
    try:
        return check(Path(arguments.archive), Path(arguments.work).resolve(), arguments.keep)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"release-test: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
