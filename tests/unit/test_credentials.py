"""The credential helper, run by git's own `git credential fill`: who gets the token, and how."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from repository.auth import (
    CREDENTIAL_HELPER,
    Token,
    credential_environment,
    split_credentials,
    with_username,
)
from repository.git import GitRunner

REMOTE = "http://127.0.0.1:8123/ns/repo.git"


def fill(runner: GitRunner, request: str) -> dict[str, str]:
    """What `git credential fill` answers for ``request``, run as git-lfs runs it (unredacted)."""
    result = subprocess.run(
        ["git", "credential", "fill"],
        input=request,
        env=runner.environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_the_remote_gets_basic_credentials_with_the_default_username():
    answer = fill(
        GitRunner("/tmp", Token("s3cret"), REMOTE), "protocol=http\nhost=127.0.0.1:8123\n\n"
    )
    assert (answer["username"], answer["password"]) == ("user", "s3cret")


def test_the_username_in_the_remote_url_is_kept():
    runner = GitRunner("/tmp", Token("s3cret"), with_username(REMOTE, "_jwt"))
    answer = fill(runner, "protocol=http\nhost=127.0.0.1:8123\nusername=_jwt\n\n")
    assert (answer["username"], answer["password"]) == ("_jwt", "s3cret")


def test_a_token_as_username_is_sent_with_an_empty_password():
    runner = GitRunner("/tmp", Token("ghp_x", as_username=True), REMOTE)
    answer = fill(runner, "protocol=http\nhost=127.0.0.1:8123\n\n")
    assert (answer["username"], answer["password"]) == ("ghp_x", "")


@pytest.mark.parametrize(
    "request_text",
    [
        "protocol=http\nhost=127.0.0.1:8124\n\n",  # another port: a storage server, say
        "protocol=https\nhost=127.0.0.1:8123\n\n",  # another scheme
        "protocol=http\nhost=127.0.0.1\n\n",  # the default port is another origin
        "protocol=http\nhost=evil.example\n\n",
        "protocol=http\nhost=127.0.0.1:81234\n\n",  # a prefix of the host is not the host
    ],
)
def test_no_other_origin_gets_an_answer(request_text):
    result = subprocess.run(
        ["git", "credential", "fill"],
        input=request_text,
        capture_output=True,
        text=True,
        env=GitRunner("/tmp", Token("s3cret"), REMOTE).environment(),
        check=False,
    )
    assert result.returncode != 0  # nothing to answer with, and prompting is disabled
    assert "s3cret" not in result.stdout and "password=" not in result.stdout


def test_a_default_port_matches_either_spelling():
    runner = GitRunner("/tmp", Token("s3cret"), "https://example.com:443/r")
    assert fill(runner, "protocol=https\nhost=example.com\n\n")["password"] == "s3cret"
    assert fill(runner, "protocol=https\nhost=example.com:443\n\n")["password"] == "s3cret"


def test_store_writes_nothing_and_a_refused_token_is_not_offered_again(tmp_path):
    runner = GitRunner(tmp_path, Token("s3cret"), REMOTE)
    env = runner.environment()  # one command: git and git-lfs share its environment
    ours = "protocol=http\nhost=127.0.0.1:8123\nusername=user\npassword=s3cret\n\n"

    def git_credential(action: str, request: str) -> str:
        return subprocess.run(
            ["git", "credential", action],
            input=request,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    git_credential("approve", ours)
    assert not os.path.exists(os.path.join(os.environ["HOME"], ".git-credentials"))
    assert os.listdir(tmp_path) == []
    git_credential("reject", ours.replace("8123", "8124"))  # another origin's verdict: ignored
    assert "password=s3cret" in git_credential("fill", "protocol=http\nhost=127.0.0.1:8123\n\n")
    # The server refused it: git-lfs 3.3 would ask again and resend it forever.
    git_credential("reject", ours)
    assert git_credential("fill", "protocol=http\nhost=127.0.0.1:8123\n\n") == ""
    # A new command starts afresh.
    assert (
        fill(
            GitRunner(tmp_path, Token("s3cret"), REMOTE), "protocol=http\nhost=127.0.0.1:8123\n\n"
        )["password"]
        == "s3cret"
    )


def test_the_users_own_helpers_are_not_asked(tmp_path, monkeypatch):
    marker = tmp_path / "asked"
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "credential.helper")
    monkeypatch.setenv(
        "GIT_CONFIG_VALUE_0",
        f"!f() {{ touch {marker}; echo username=them; echo password=theirs; }}; f",
    )
    request = "protocol=http\nhost=127.0.0.1:8123\n\n"
    answer = fill(GitRunner("/tmp", Token("ours"), REMOTE), request)
    assert answer["password"] == "ours" and not marker.exists()
    # Without a token, the user's setup is theirs: lfsrepo adds and removes nothing.
    answer = fill(GitRunner("/tmp", None, REMOTE), request)
    assert answer["password"] == "theirs" and marker.exists()


def test_the_secret_is_in_the_environment_only_and_os_environ_is_untouched():
    before = dict(os.environ)
    runner = GitRunner("/tmp", Token("s3cret"), REMOTE)
    env = runner.environment()
    config_values = [env[f"GIT_CONFIG_VALUE_{n}"] for n in range(int(env["GIT_CONFIG_COUNT"]))]
    assert not any("s3cret" in value for value in config_values)
    assert "s3cret" not in CREDENTIAL_HELPER
    assert [name for name, value in env.items() if value == "s3cret"] == [
        "LFSREPO_CREDENTIAL_PASSWORD"
    ]
    assert env["GIT_TERMINAL_PROMPT"] == "0" and "GIT_ASKPASS" not in env
    assert dict(os.environ) == before


def test_redaction_covers_every_spelling_of_the_token():
    runner = GitRunner("/tmp", Token("s3/cret"), with_username(REMOTE, "_jwt"))
    basic = base64.b64encode(b"_jwt:s3/cret").decode()
    text = f"a s3/cret b s3%2Fcret c Basic {basic}"
    assert runner.redact(text) == "a <redacted> b <redacted> c Basic <redacted>"


def test_no_credentials_for_remotes_that_are_not_http():
    assert credential_environment(Token("t"), "ssh://git@h/r").config == []
    assert credential_environment(Token("t"), "/srv/git/r.git").config == []


@pytest.mark.parametrize("bad", ["tok\n", "to\rk", "t\0k", ""])
def test_a_token_with_a_line_break_is_refused_with_the_reason(bad):
    with pytest.raises(ValueError, match=r"line break|empty"):
        Token(bad)


def test_credentials_split_out_of_urls():
    assert split_credentials("https://u:p%40ss@h:8/x") == ("https://h:8/x", "u", "p@ss")
    assert split_credentials("https://tok@h/x") == ("https://h/x", "tok", None)
    assert split_credentials("https://u:@h/x") == ("https://h/x", "u", None)
    assert split_credentials("ssh://git@h/x") == ("ssh://git@h/x", None, None)
