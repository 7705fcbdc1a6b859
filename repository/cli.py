"""The ``lfsrepo`` command: one entry point, subcommands contributed by each package.

Example:
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
    add_serve_command(subparsers)
    add_agent_commands(subparsers)
    return parser


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
