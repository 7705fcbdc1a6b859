"""The credential helper, run by git's own `git credential fill`: who gets the token, and how."""

from __future__ import annotations

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
    result = subprocess.run(["git", "credential", "fill"], input=request, env=runner.environment(),
                            capture_output=True, text=True, check=False)
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_the_remote_gets_basic_credentials_with_the_default_username():
    answer = fill(GitRunner("/tmp", Token("s3cret"), REMOTE), "protocol=http\nhost=127.0.0.1:8123\n\n")
    assert (answer["username"], answer["password"]) == ("user", "s3cret")


def test_the_username_in_the_remote_url_is_kept():
    runner = GitRunner("/tmp", Token("s3cret"), with_username(REMOTE, "_jwt"))
    answer = fill(runner, "protocol=http\nhost=127.0.0.1:8123\nusername=_jwt\n\n")
    assert (answer["username"], answer["password"]) == ("_jwt", "s3cret")


def test_a_token_as_username_is_sent_with_an_empty_password():
    runner = GitRunner("/tmp", Token("ghp_x", as_username=True), REMOTE)
    answer = fill(runner, "protocol=http\nhost=127.0.0.1:8123\n\n")
    assert (answer["username"], answer["password"]) == ("ghp_x", "")


@pytest.mark.parametrize("request_text", [
    "protocol=http\nhost=127.0.0.1:8124\n\n",      # another port: a storage server, say
    "protocol=https\nhost=127.0.0.1:8123\n\n",     # another scheme
    "protocol=http\nhost=127.0.0.1\n\n",           # the default port is another origin
    "protocol=http\nhost=evil.example\n\n",
    "protocol=http\nhost=127.0.0.1:81234\n\n",     # a prefix of the host is not the host
])
def test_no_other_origin_gets_an_answer(request_text):
    result = subprocess.run(["git", "credential", "fill"], input=request_text, capture_output=True,
                            text=True, env=GitRunner("/tmp", Token("s3cret"), REMOTE).environment())
    assert result.returncode != 0  # nothing to answer with, and prompting is disabled
    assert "s3cret" not in result.stdout and "password=" not in result.stdout


def test_a_default_port_matches_either_spelling():
    runner = GitRunner("/tmp", Token("s3cret"), "https://example.com:443/r")
    assert fill(runner, "protocol=https\nhost=example.com\n\n")["password"] == "s3cret"
    assert fill(runner, "protocol=https\nhost=example.com:443\n\n")["password"] == "s3cret"


def test_store_and_erase_write_nothing(tmp_path):
    runner = GitRunner(tmp_path, Token("s3cret"), REMOTE)
    request = b"protocol=http\nhost=127.0.0.1:8123\nusername=user\npassword=s3cret\n\n"
    for action in ("approve", "reject"):
        runner.run(["credential", action], input=request)
    home = os.environ["HOME"]
    assert not os.path.exists(os.path.join(home, ".git-credentials"))
    leftovers = [name for name in os.listdir(tmp_path)]
    assert leftovers == []


def test_the_users_own_helpers_are_not_asked(tmp_path, monkeypatch):
    marker = tmp_path / "asked"
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "credential.helper")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", f"!f() {{ touch {marker}; echo username=them; echo password=theirs; }}; f")
    answer = fill(GitRunner("/tmp", Token("ours"), REMOTE), "protocol=http\nhost=127.0.0.1:8123\n\n")
    assert answer["password"] == "ours" and not marker.exists()
    # Without a token, the user's setup is theirs: lfsrepo adds and removes nothing.
    answer = fill(GitRunner("/tmp", None, REMOTE), "protocol=http\nhost=127.0.0.1:8123\n\n")
    assert answer["password"] == "theirs" and marker.exists()


def test_the_secret_is_in_the_environment_only_and_os_environ_is_untouched():
    before = dict(os.environ)
    runner = GitRunner("/tmp", Token("s3cret"), REMOTE)
    env = runner.environment()
    config_values = [env[f"GIT_CONFIG_VALUE_{n}"] for n in range(int(env["GIT_CONFIG_COUNT"]))]
    assert not any("s3cret" in value for value in config_values)
    assert "s3cret" not in CREDENTIAL_HELPER
    assert [name for name, value in env.items() if value == "s3cret"] == [
        "LFSREPO_CREDENTIAL_PASSWORD"]
    assert env["GIT_TERMINAL_PROMPT"] == "0" and "GIT_ASKPASS" not in env
    assert dict(os.environ) == before


def test_redaction_covers_every_spelling_of_the_token():
    runner = GitRunner("/tmp", Token("s3/cret"), with_username(REMOTE, "_jwt"))
    basic = subprocess.run(["base64"], input=b"_jwt:s3/cret", capture_output=True).stdout.strip()
    text = f"a s3/cret b s3%2Fcret c Basic {basic.decode()}"
    assert runner.redact(text) == "a <redacted> b <redacted> c Basic <redacted>"


def test_no_credentials_for_remotes_that_are_not_http():
    assert credential_environment(Token("t"), "ssh://git@h/r").config == []
    assert credential_environment(Token("t"), "/srv/git/r.git").config == []


@pytest.mark.parametrize("bad", ["tok\n", "to\rk", "t\0k", ""])
def test_a_token_with_a_line_break_is_refused_with_the_reason(bad):
    with pytest.raises(ValueError, match="line break|empty"):
        Token(bad)


def test_credentials_split_out_of_urls():
    assert split_credentials("https://u:p%40ss@h:8/x") == ("https://h:8/x", "u", "p@ss")
    assert split_credentials("https://tok@h/x") == ("https://h/x", "tok", None)
    assert split_credentials("https://u:@h/x") == ("https://h/x", "u", None)
    assert split_credentials("ssh://git@h/x") == ("ssh://git@h/x", None, None)
