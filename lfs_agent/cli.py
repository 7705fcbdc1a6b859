"""The agent's ``lfsrepo`` subcommands: ``lfs-enable-largefiles PATH``, ``lfs-multipart-upload``."""

from __future__ import annotations

import argparse


def add_agent_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lfs-enable-largefiles`` and ``lfs-multipart-upload`` on ``lfsrepo``'s parser."""
    enable = subparsers.add_parser(
        "lfs-enable-largefiles",
        help="let git-lfs upload files over 5 GB in parallel parts in this clone",
        description="Write the lfs.customtransfer.multipart.* config into the clone at PATH.",
    )
    enable.add_argument("path", metavar="PATH", help="a git clone")
    enable.set_defaults(func=_enable)
    agent = subparsers.add_parser(
        "lfs-multipart-upload",
        help="the transfer agent git-lfs starts (not for direct use)",
        description="Speak git-lfs's custom transfer protocol on stdin/stdout.",
    )
    agent.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="parts in flight (default: git-lfs's lfs.concurrenttransfers)",
    )
    agent.add_argument("--log", default=None, help="debug log file (default: $LFSREPO_AGENT_LOG)")
    agent.set_defaults(func=_agent)


def _enable(args: argparse.Namespace) -> int:
    from lfs_agent.setup import agent_command, enable_largefiles

    enable_largefiles(args.path)
    print(f"{args.path}: large files now go through `{agent_command()}`")
    return 0


def _agent(args: argparse.Namespace) -> int:
    from lfs_agent.agent import main

    argv = [] if args.concurrency is None else ["--concurrency", str(args.concurrency)]
    return main(argv + ([] if args.log is None else ["--log", args.log]))
