"""`lfsrepo serve`: run the local git + LFS server."""

from __future__ import annotations

import argparse


def add_serve_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lfsrepo serve`` (filled in by the server work)."""
