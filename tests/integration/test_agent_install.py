"""The agent command written by real installs of the built wheel: each install enables a clone
with its own ``lfsrepo lfs-enable-largefiles`` and pushes a multipart object through git-lfs and
the agent, with none of the install's environment variables set during the push.

Default suite: a fresh virtualenv, its dependencies borrowed from this one (no package index).
Opt-in (``scripts/test --slow``), with the dependencies from the package index: a fresh
virtualenv, ``pip install --user`` and ``pip install --prefix``, the last two with an interpreter
outside any virtualenv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from repository.testing import LocalGitServer
from tests.support.agent import agent_clone, commit, git, server_sha256

MiB = 1024**2
ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 600  # keeps a stuck package index from hanging the suite


@pytest.fixture(scope="module")
def server():
    with LocalGitServer(multipart_threshold=MiB, chunk_size=MiB) as server:
        yield server


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the working tree, built from a copy (no build/ or egg-info left behind)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for package in ("repository", "lfs_agent"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, source])
    [built] = dist.glob("lfsrepo-*.whl")
    return built


def run(argv: list, env: dict | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        env=env or clean_environment(),
        cwd=cwd,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def clean_environment(**extra: str) -> dict[str, str]:
    """This environment without PYTHON* variables (of this test run), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return {**env, **extra}


def enable_and_push(
    python: Path, install: Path, server: LocalGitServer, tmp_path: Path, name: str, **env: str
) -> None:
    """Enable a clone with ``python``'s own lfsrepo (``env`` set), then push without ``env``."""
    clone = agent_clone(server, tmp_path, name)
    # From a folder of its own: ``-m`` puts the current one first on sys.path.
    enable = [python, "-m", "repository.cli", "lfs-enable-largefiles", clone]
    run(enable, clean_environment(**env), cwd=tmp_path)
    args = git(clone, "config", "lfs.customtransfer.multipart.args").stdout
    assert f" {python} {install}" in args  # this install's interpreter and agent, nothing else
    oid = commit(clone, {"weights.bin": 3 * MiB + 17})["weights.bin"]
    log = tmp_path / "agent.log"
    git(clone, "push", "-q", "origin", "main", env={"LFSREPO_AGENT_LOG": str(log)})
    assert server_sha256(server, oid) == oid
    assert f"upload {oid}" in log.read_text() and "part 4 done" in log.read_text()


def site_packages(python: Path, scheme_vars: str = "") -> Path:
    code = f"import sysconfig; print(sysconfig.get_path('purelib'{scheme_vars}))"
    return Path(run([python, "-c", code]).strip())


def test_a_fresh_virtualenv(server, wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python]
    run([*pip, "install", "-q", "--no-deps", "--no-index", wheel])
    # The dependencies: a .pth line adds this virtualenv's folder without reading the .pth files
    # in it, so this working tree's editable install stays out and lfsrepo comes from the wheel.
    (site_packages(python) / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = site_packages(python) / "lfs_agent"
    enable_and_push(python, install, server, tmp_path, "install-venv")


def interpreter(*minors: int, bare: bool = False) -> Path:
    """The first Python 3.<minor> on PATH or among pyenv's; outside a virtualenv if ``bare``."""
    pyenv = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
    for minor in minors:
        candidates = [f"python3.{minor}"]
        if pyenv.returncode == 0:
            versions = Path(pyenv.stdout.strip()) / "versions"
            candidates += sorted(str(p) for p in versions.glob(f"3.{minor}.*/bin/python3"))
        for candidate in candidates:
            probe = subprocess.run(
                [
                    candidate,
                    "-c",
                    "import sys; print(sys.executable, sys.prefix == sys.base_prefix)",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.returncode == 0 and (not bare or probe.stdout.split()[1] == "True"):
                return Path(probe.stdout.split()[0])
    pytest.skip(f"no Python {' or '.join(f'3.{minor}' for minor in minors)} here")


@pytest.mark.slow
def test_a_fresh_virtualenv_with_dependencies_from_the_index(server, wheel, tmp_path):
    venv = tmp_path / "venv"
    run([interpreter(13, 12, 11, 10), "-m", "venv", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", wheel])
    enable_and_push(python, site_packages(python) / "lfs_agent", server, tmp_path, "index-venv")


@pytest.mark.slow
def test_pip_install_user(server, wheel, tmp_path):
    python = interpreter(10, 12, 13, 11, bare=True)
    user = {"PYTHONUSERBASE": str(tmp_path / "userbase")}
    run([python, "-m", "pip", "install", "-q", "--user", wheel], clean_environment(**user))
    code = "import site; print(site.getusersitepackages())"
    install = Path(run([python, "-c", code], clean_environment(**user)).strip()) / "lfs_agent"
    assert install.is_dir()
    enable_and_push(python, install, server, tmp_path, "index-user", **user)


@pytest.mark.slow
def test_pip_install_prefix(server, wheel, tmp_path):
    python = interpreter(12, 13, 10, 11, bare=True)
    prefix = tmp_path / "prefix"
    run([python, "-m", "pip", "install", "-q", "--prefix", prefix, wheel])
    packages = site_packages(python, f", vars={{'base': {str(prefix)!r}}}")
    assert (packages / "lfs_agent").is_dir()
    path = {"PYTHONPATH": str(packages)}  # how such an install is used, while enabling only
    enable_and_push(python, packages / "lfs_agent", server, tmp_path, "index-prefix", **path)
