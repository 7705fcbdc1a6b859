"""What installing lfsrepo costs a test run that never uses the server, and what a user without
the ``lfsrepo[server]`` extra (Werkzeug) is told. Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

PYTHON_TIMEOUT_S = 120  # only keeps a broken test from hanging
# Everything of the server but the light modules a user may touch without starting one.
SERVER_MODULES = {
    f"repository.testing.{name}"
    for name in (
        "_http",
        "_httpd",
        "auth",
        "git_http",
        "lfs_api",
        "lfs_proxy",
        "repos",
        "server",
        "storage",
    )
}
NO_WERKZEUG = "import sys; sys.modules['werkzeug'] = None  # as if it were not installed\n"


def python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=PYTHON_TIMEOUT_S,
    )


def pytest_run(folder: Path, test: str, conftest: str = "") -> subprocess.CompletedProcess[str]:
    """Run pytest in ``folder`` on one test file, the way a user's project would: the lfsrepo
    plugin comes in through its entry point, and nothing of this project's configuration."""
    (folder / "test_user.py").write_text(textwrap.dedent(test))
    (folder / "conftest.py").write_text(textwrap.dedent(conftest))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
        timeout=PYTHON_TIMEOUT_S,
    )


def test_importing_the_packages_and_the_plugin_loads_nothing_of_the_server():
    result = python(
        "import json, sys\n"
        "import repository, repository.testing, repository.testing.pytest_plugin\n"
        "from repository.testing import Faults, ServerError\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "werkzeug" not in loaded
    assert loaded & SERVER_MODULES == set()


def test_the_plugin_is_inert_until_a_test_uses_a_fixture(tmp_path):
    result = pytest_run(
        tmp_path,
        f"""
        import sys

        SERVER_MODULES = {sorted(SERVER_MODULES)!r}

        def test_a_test_without_the_fixtures_loads_no_server():
            assert "repository.testing.pytest_plugin" in sys.modules  # the plugin is there
            assert "werkzeug" not in sys.modules
            assert not set(SERVER_MODULES) & set(sys.modules)

        def test_the_fixture_starts_a_real_server(remote_repo):
            assert remote_repo.server.list_refs(remote_repo.name) == {{}}
            assert "werkzeug" in sys.modules
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_without_werkzeug_starting_a_server_names_the_extra():
    result = python(
        NO_WERKZEUG
        + textwrap.dedent("""
        from repository.testing import LocalGitServer, MissingDependencyError
        server = LocalGitServer()  # made without Werkzeug: only starting needs it
        try:
            server.start()
        except MissingDependencyError as error:
            print(isinstance(error, ImportError), error)
        finally:
            server.stop()
        """)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True ")
    assert "pip install 'lfsrepo[server]'" in result.stdout


def test_without_werkzeug_a_test_using_the_fixture_says_what_to_install(tmp_path):
    result = pytest_run(
        tmp_path,
        """
        def test_uses_the_server(remote_repo):
            pass
        """,
        conftest=NO_WERKZEUG,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "MissingDependencyError" in result.stdout
    assert "pip install 'lfsrepo[server]'" in result.stdout


def test_without_werkzeug_lfsrepo_serve_says_what_to_install(tmp_path):
    result = python(
        NO_WERKZEUG
        + "from repository.cli import main\n"
        + f"sys.exit(main(['serve', '--data', {str(tmp_path)!r}]))\n"
    )
    assert result.returncode == 1
    assert "pip install 'lfsrepo[server]'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
