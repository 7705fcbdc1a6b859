"""`lfsrepo serve`: run the local git + LFS server until Ctrl-C or SIGTERM.

The base URL is the first line it prints, so a script can read it::

    $ lfsrepo serve --data /tmp/lfs-data --multipart-threshold 8MiB --chunk-size 5MiB
    http://127.0.0.1:40123

A bad value is a usage error naming it (exit 2), found while the arguments are parsed; a server
that cannot start (its port taken, the ``lfsrepo[server]`` extra missing, an S3 bucket it cannot
use) exits 1 with the reason. Neither prints a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading

SIGNING_KEY_ENV = "LFSREPO_SERVE_SIGNING_KEY"
_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "G": 1000**3,
    "GB": 1000**3,
    "T": 1000**4,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional unit (``8MiB``, ``5GB``, ``1.5G``, ``100``).

    Example:
        >>> parse_size("8MiB"), parse_size("5GB")
        (8388608, 5000000000)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use e.g. 100, 8MiB, 5GB")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_port(text: str) -> int:
    """A TCP port number, 0 (any free port) to 65535.

    Example:
        >>> parse_port("8080")
        8080
    """
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: use 0 (any free port) to 65535")
    return int(text)


def parse_count(text: str) -> int:
    """A whole number >= 0 (0 turns a fault off).

    Example:
        >>> parse_count("3")
        3
    """
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a whole number >= 0")
    return int(text)


def parse_positive_size(text: str) -> int:
    """A size as :func:`parse_size` reads it, above zero.

    Example:
        >>> parse_positive_size("5MiB")
        5242880
    """
    size = parse_size(text)
    if size <= 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: must be above 0")
    return size


def parse_seconds(text: str) -> float:
    """A finite number of seconds >= 0.

    Example:
        >>> parse_seconds("0.05")
        0.05
    """
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (0 <= seconds < float("inf")):
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}: use a number >= 0, e.g. 0.05")
    return seconds


def parse_duration(text: str) -> float:
    """A duration above zero: seconds, or a number with ``s``, ``m``, ``h`` or ``d``.

    Example:
        >>> parse_duration("7d"), parse_duration("90")
        (604800.0, 90.0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match or not float(match.group(1)) > 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 3600, 12h, 7d")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def parse_lfs_server(text: str) -> str:
    """An LFS server to forward to: ``http://host:port``.

    Example:
        >>> parse_lfs_server("http://127.0.0.1:9000")
        'http://127.0.0.1:9000'
    """
    from .errors import InvalidArgumentError
    from .lfs_proxy import parse_upstream

    try:
        parse_upstream(text)
    except InvalidArgumentError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_serve_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lfsrepo serve`` on the ``lfsrepo`` command.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_serve_command(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["serve", "--data", "d", "--chunk-size", "5MiB"]).chunk_size
        5242880
    """
    p = subparsers.add_parser(
        "serve",
        help="run a local git + Git LFS server (tests, demos, offline work)",
        description="Serve git smart HTTP and the Git LFS API (basic + multipart) from DIR. "
        "Prints the base URL first, then runs until Ctrl-C.",
        epilog=f"{SIGNING_KEY_ENV}: the secret (32 characters or more) that signs the object, "
        "part and completion URLs the server hands out; without it a random one of this "
        "process does, so set the same one in every process serving the same repositories.",
    )
    p.add_argument(
        "--data", required=True, metavar="DIR", help="where repositories and objects live"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=parse_port, default=0, help="port (default: any free port)")
    p.add_argument(
        "--token",
        default=os.environ.get("LFSREPO_SERVE_TOKEN"),
        help="require this token (Basic password or Bearer); better given as "
        "LFSREPO_SERVE_TOKEN, since every user of the machine can read arguments",
    )
    p.add_argument(
        "--multipart-threshold",
        type=parse_size,
        default=5 * 1024**3,
        metavar="SIZE",
        help="offer multipart above this size (default 5GiB)",
    )
    p.add_argument(
        "--chunk-size",
        type=parse_positive_size,
        default=64 * 1024**2,
        metavar="SIZE",
        help="multipart part size (default 64MiB)",
    )
    p.add_argument(
        "--no-auto-create",
        dest="auto_create",
        action="store_false",
        help="a push to a missing repository fails instead of creating it",
    )
    p.add_argument(
        "--action-authorization",
        action="store_true",
        help="give each basic transfer action its own Authorization header, as "
        "giftless, GitLab and Gitea do, instead of a signed URL",
    )
    p.add_argument(
        "--separate-storage",
        action="store_true",
        help="serve object transfers from a second port (another origin)",
    )
    p.add_argument(
        "--lfs-server",
        metavar="URL",
        type=parse_lfs_server,
        help="forward the LFS API to this other LFS server (http://host:port), on "
        "this origin, instead of serving it",
    )
    s3 = p.add_argument_group(
        "LFS objects in S3",
        "Keep LFS objects in an S3 bucket instead of DIR (which keeps the git repositories); "
        "credentials from the standard AWS environment and config (AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws). Needs lfsrepo[s3].",
    )
    s3.add_argument("--s3-bucket", metavar="NAME", help="the bucket (it must exist)")
    s3.add_argument("--s3-prefix", default="", metavar="P", help="key prefix, e.g. team/lfs")
    s3.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="an S3-compatible store (MinIO, Ceph RGW, SeaweedFS, R2...); default: AWS",
    )
    s3.add_argument("--s3-region", metavar="R", help="the bucket's region")
    s3.add_argument(
        "--s3-pending-max-age",
        type=parse_duration,
        default=7 * 86400.0,
        metavar="DURATION",
        help="abort multipart uploads pending longer than this (default 7d)",
    )
    faults = p.add_argument_group("fault injection")
    faults.add_argument(
        "--fail-every-nth-part",
        type=parse_count,
        default=0,
        metavar="N",
        help="answer every Nth part PUT with 500 after reading it",
    )
    faults.add_argument(
        "--drop-every-nth-body",
        type=parse_count,
        default=0,
        metavar="N",
        help="close the connection halfway through every Nth object body",
    )
    faults.add_argument(
        "--bandwidth",
        type=parse_positive_size,
        default=None,
        metavar="SIZE",
        help="cap each connection at SIZE bytes per second",
    )
    faults.add_argument(
        "--latency",
        type=parse_seconds,
        default=0.0,
        metavar="SECONDS",
        help="add this delay to every request",
    )
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Run the server described by the parsed ``serve`` arguments until Ctrl-C or SIGTERM;
    return the exit status: 0, or 1 with the reason on stderr if it cannot start (its port is
    taken, the ``lfsrepo[server]`` extra is missing)."""
    from .auth import signing_key_bytes
    from .errors import InvalidArgumentError, ServerError
    from .faults import Faults
    from .server import LocalGitServer

    faults = Faults(
        fail_every_nth_part=args.fail_every_nth_part,
        drop_every_nth_body=args.drop_every_nth_body,
        bandwidth_bytes_per_s=args.bandwidth,
        latency_s=args.latency,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    s3_options = [name for name in ("s3_prefix", "s3_endpoint", "s3_region") if getattr(args, name)]
    if s3_options and not args.s3_bucket:
        flags = ", ".join("--" + name.replace("_", "-") for name in s3_options)
        print(f"lfsrepo serve: {flags} need --s3-bucket", file=sys.stderr)
        return 2
    signing_key = os.environ.get(SIGNING_KEY_ENV) or None
    try:
        if signing_key is not None:
            signing_key_bytes(signing_key)
    except InvalidArgumentError as error:
        print(f"lfsrepo serve: {SIGNING_KEY_ENV}: {error}", file=sys.stderr)
        return 2
    try:
        server = LocalGitServer(
            args.data,
            host=args.host,
            port=args.port,
            token=args.token,
            multipart_threshold=args.multipart_threshold,
            chunk_size=args.chunk_size,
            auto_create=args.auto_create,
            faults=faults,
            action_authorization=args.action_authorization,
            separate_storage=args.separate_storage,
            lfs_server=args.lfs_server,
            s3_bucket=args.s3_bucket,
            s3_prefix=args.s3_prefix,
            s3_endpoint=args.s3_endpoint,
            s3_region=args.s3_region,
            s3_pending_max_age=args.s3_pending_max_age,
            signing_key=signing_key,
        ).start()
    except ServerError as error:
        print(f"lfsrepo serve: {error}", file=sys.stderr)
        return 1
    with server:
        print(server.base_url, flush=True)
        storage = f", objects from {server.storage_url}" if server.storage_url else ""
        if args.s3_bucket:
            storage = f", LFS objects in s3://{args.s3_bucket}/{args.s3_prefix}"
        print(f"serving {server.data_dir}{storage}; Ctrl-C to stop", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0
