"""The ``lfsrepo`` command: one entry point, subcommands contributed by each package.

Example:
    $ lfsrepo upload https://host/ns/dataset.git ./data raw --files-per-commit 1000
    $ lfsrepo serve --data /tmp/lfs-data --port 8080
    $ lfsrepo lfs-enable-largefiles path/to/clone
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered."""
    from lfs_agent.cli import add_agent_commands
    from repository.testing.cli import add_serve_command

    parser = argparse.ArgumentParser(
        prog="lfsrepo", description="Large files in git repositories with Git LFS."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_upload_command(subparsers)
    add_serve_command(subparsers)
    add_agent_commands(subparsers)
    return parser


UPLOAD_EXIT_CODES = """exit status:
  0    everything is in the repository (also when it was there already)
  1    the upload failed; the message says why. Run the same command again to resume
  2    bad arguments (a missing LOCAL_PATH, say)
  3    the server refused the credentials (set LFSREPO_TOKEN or HF_TOKEN)
  130  interrupted; run the same command again to resume"""


def add_upload_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lfsrepo upload``."""
    command = subparsers.add_parser(
        "upload",
        help="put a local file or folder into a repository (resumable)",
        description=(
            "Put a local file or folder into a git + LFS repository without downloading it:\n"
            "a push-only clone in a cache folder, commits of at most --files-per-commit files\n"
            "pushed one after another. Run it again after a failure or a kill: what the\n"
            "repository has already is skipped. The token comes from LFSREPO_TOKEN or HF_TOKEN."
        ),
        epilog=UPLOAD_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("url", metavar="URL", help="the repository's clone URL")
    command.add_argument("local_path", metavar="LOCAL_PATH", help="a file or a folder")
    command.add_argument(
        "path_in_repo",
        metavar="PATH_IN_REPO",
        nargs="?",
        help="where it goes (default: the root for a folder, the file's name for a file)",
    )
    command.add_argument(
        "--files-per-commit",
        type=_positive,
        metavar="N",
        help="split the upload into commits of at most N files (default: one commit)",
    )
    command.add_argument("-m", "--message", help="the commit message")
    command.add_argument(
        "--work-dir",
        metavar="DIR",
        help="the push-only clone to work in (default: a cache folder per repository URL)",
    )
    command.set_defaults(func=_upload)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _upload(args: argparse.Namespace) -> int:
    from repository.errors import AuthenticationError, FolderNotFoundError
    from repository.upload import upload

    def report(done: int, total: int, url: str | None) -> None:
        outcome = f"pushed {url}" if url else "already in the repository"
        print(f"lfsrepo upload: {done}/{total} files: {outcome}", file=sys.stderr, flush=True)

    try:
        result = upload(
            args.url,
            args.local_path,
            args.path_in_repo,
            token=True,
            files_per_commit=args.files_per_commit,
            commit_message=args.message,
            work_dir=args.work_dir,
            on_commit=report,
        )
    except (FolderNotFoundError, ValueError) as error:
        print(f"lfsrepo upload: {error}", file=sys.stderr)
        return 2
    except AuthenticationError as error:
        print(f"lfsrepo upload: {error}", file=sys.stderr)
        return 3
    except OSError as error:  # RepositoryError, disk, network
        print(f"lfsrepo upload: {error}\nRun the same command again to resume.", file=sys.stderr)
        return 1
    print(
        f"lfsrepo upload: done: {result.files} file(s), {len(result.commits)} commit(s) pushed",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lfsrepo`` and return its exit code; no traceback reaches the user unless asked for.

    Set ``LFSREPO_DEBUG=1`` to see the traceback of an unexpected error.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("lfsrepo: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # RepositoryError is an OSError; so are disk and network errors
        print(f"lfsrepo {args.command}: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - the last line of defence for a CLI user
        if os.environ.get("LFSREPO_DEBUG"):
            traceback.print_exc()
        print(
            f"lfsrepo {args.command}: unexpected {type(error).__name__}: {error}\n"
            "Set LFSREPO_DEBUG=1 to see the traceback, and please report it.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
