"""Outcomes never depend on the user's language: the workflow with git's German messages active."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from repository.testing import LocalGitServer

TOKEN = "locale-token"

WORKFLOW = textwrap.dedent("""
    import sys
    from pathlib import Path
    from repository import (AuthenticationError, NothingToCommitError, Repository,
                            RevisionNotFoundError)
    url, root, token = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    try:
        Repository(root / "denied", clone_from=url, token="wrong")
    except AuthenticationError:
        print("wrong token: AuthenticationError")
    repo = Repository(root / "a", clone_from=url, token=token)
    other = Repository(root / "b", clone_from=url, token=token)
    with repo.commit("nothing changed"):
        pass
    print("empty commit block: fine")
    try:
        repo.git_commit("again nothing")
    except NothingToCommitError:
        print("git_commit: NothingToCommitError")
    try:
        repo.git_checkout("no-such-branch")
    except RevisionNotFoundError:
        print("checkout: RevisionNotFoundError")
    with other.commit("other first"):
        Path("other.txt").write_text("o")
    with open(root / "a" / "mine.txt", "w") as f:
        f.write("m")
    repo.git_add()
    repo.git_commit("mine")
    repo.git_push()  # rejected first (the remote moved on), then rebased and pushed
    print("rejected push: rebased and pushed", repo.git_head_hash())
""")


@pytest.fixture(scope="module")
def german(tmp_path_factory) -> dict[str, str]:
    """An environment with git's German translations active, as a German user's shell has."""
    locales = tmp_path_factory.mktemp("locales")
    subprocess.run(
        ["localedef", "-i", "de_DE", "-f", "UTF-8", str(locales / "de_DE.UTF-8")],
        check=True,
        capture_output=True,
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("LC_")}
    env.update(LOCPATH=str(locales), LANG="de_DE.UTF-8", LANGUAGE="de:en")
    probe = tmp_path_factory.mktemp("probe")
    subprocess.run(["git", "init", "-q", str(probe)], check=True)
    status = subprocess.run(
        ["git", "status"], cwd=probe, env=env, capture_output=True, text=True, check=True
    )
    assert "Auf Branch" in status.stdout, status.stdout  # the translations really are active
    return env


def test_the_workflow_under_german_git_messages(german, tmp_path):
    with LocalGitServer(token=TOKEN) as server:
        url = server.create_repo("locale/de", files={"seed.txt": b"seed"})
        script = tmp_path / "workflow.py"
        script.write_text(WORKFLOW)
        result = subprocess.run(
            [sys.executable, str(script), url, str(tmp_path), TOKEN],
            env=german,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        lines = result.stdout.splitlines()
        assert lines[:4] == [
            "wrong token: AuthenticationError",
            "empty commit block: fine",
            "git_commit: NothingToCommitError",
            "checkout: RevisionNotFoundError",
        ]
        assert lines[4].startswith("rejected push: rebased and pushed ")
        pushed = lines[4].split()[-1]
        assert server.list_refs("locale/de")["refs/heads/main"] == pushed
        files = subprocess.run(
            ["git", "ls-tree", "--name-only", pushed],
            cwd=tmp_path / "a",
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert {"mine.txt", "other.txt", "seed.txt"} <= set(files)
