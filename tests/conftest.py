"""Test-wide isolation: every test process gets its own HOME with a known git identity.

Tests then never read or write the developer's ~/.gitconfig or credentials, and behave the same on a
fresh CI machine as on a laptop.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    home = tempfile.mkdtemp(prefix="lfsrepo-test-home-")
    os.environ.update(
        HOME=home,
        XDG_CONFIG_HOME=os.path.join(home, ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="lfsrepo tests",
        GIT_AUTHOR_EMAIL="tests@lfsrepo.invalid",
        GIT_COMMITTER_NAME="lfsrepo tests",
        GIT_COMMITTER_EMAIL="tests@lfsrepo.invalid",
    )
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_TRACE", "GIT_CURL_VERBOSE"):
        os.environ.pop(key, None)
    subprocess.run(["git", "config", "--global", "init.defaultBranch", "main"], check=True)
    # As on a typical user's machine: git-lfs's filters are installed in the global config.
    subprocess.run(["git", "lfs", "install", "--skip-repo"], check=True, capture_output=True)
