"""Repository limits, the pure parts: limits from the environment, sizes in words, the index
header's entry count."""

from __future__ import annotations

from pathlib import Path

import pytest

from repository import RepositoryError, RepositoryLimits
from repository.limits import VARIABLES, describe_size, index_entries
from tests.support.git import git

GB = 1000**3


def test_the_defaults_are_the_hubs_in_decimal_units():
    assert RepositoryLimits.from_environment({}) == RepositoryLimits(
        max_file_size=50_000_000_000,
        recommended_file_size=20_000_000_000,
        max_folder_entries=10_000,
        max_repo_files=100_000,
    )


def test_each_variable_sets_its_limit_and_off_switches_it_off():
    limits = RepositoryLimits.from_environment(
        {
            "LFSREPO_MAX_FILE_SIZE": " 1000 ",
            "LFSREPO_RECOMMENDED_FILE_SIZE": "0",
            "LFSREPO_MAX_FOLDER_ENTRIES": "OFF",
            "LFSREPO_MAX_REPO_FILES": "",  # empty: as if unset
        }
    )
    assert limits == RepositoryLimits(
        max_file_size=1000, recommended_file_size=0, max_folder_entries=None
    )


@pytest.mark.parametrize("value", ["1.5", "-1", "1e9", "20GB", "\u0663", "none", "0x10"])
@pytest.mark.parametrize("name", list(VARIABLES))
def test_a_malformed_value_names_its_variable_and_what_to_set(name, value):
    variable, unit = VARIABLES[name]
    with pytest.raises(RepositoryError) as refused:
        RepositoryLimits.from_environment({variable: value})
    message = str(refused.value)
    assert message.startswith(f"the environment variable {variable} is {value!r}: ")
    assert f"a whole number of {unit}" in message and "'off'" in message


@pytest.mark.parametrize("value", [-1, 1.5, True, "10"])
def test_a_limit_given_in_code_must_be_a_whole_number_or_none(value):
    with pytest.raises(ValueError, match="must be a whole number >= 0 or None"):
        RepositoryLimits(max_folder_entries=value)


@pytest.mark.parametrize(
    ("count", "words"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (999, "999 bytes"),
        (1000, "1.0 kB (1,000 bytes)"),
        (5 * 1024**2, "5.2 MB (5,242,880 bytes)"),
        (50 * GB + 1, "50.0 GB (50,000,000,001 bytes)"),
        (3 * 1000 * GB, "3.0 TB (3,000,000,000,000 bytes)"),
    ],
)
def test_sizes_are_said_in_decimal_units_and_exactly(count, words):
    assert describe_size(count) == words


def test_the_index_header_counts_the_entries(tmp_path: Path):
    git(tmp_path, "init", "-q")
    assert index_entries(str(tmp_path / ".git")) == 0  # no index yet
    for name in ("a", "b", "sub/c"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(name)
    git(tmp_path, "add", ".")
    assert index_entries(str(tmp_path / ".git")) == 3
    git(tmp_path, "update-index", "--index-version", "4")
    assert index_entries(str(tmp_path / ".git")) == 3


@pytest.mark.parametrize("content", [b"", b"DIRC", b"XXXX\x00\x00\x00\x02\x00\x00\x00\x03"])
def test_an_index_header_git_would_not_write_counts_nothing(tmp_path: Path, content: bytes):
    (tmp_path / "index").write_bytes(content)
    assert index_entries(str(tmp_path)) is None
