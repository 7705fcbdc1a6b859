"""`lfsrepo lfs-enable-largefiles` and `lfsrepo lfs-multipart-upload`."""

from __future__ import annotations

import argparse


def add_agent_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the agent's subcommands (filled in by the agent work)."""
