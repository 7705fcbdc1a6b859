"""giftless 0.6.2, a Git LFS server nobody on this project wrote, run under waitress on loopback.

Two modes, as deployments run it: anonymous read/write, and a JWT for every request (the client
sends HTTP Basic ``_jwt:<token>``). Either way each upload action carries giftless's own
pre-authorised ``Authorization`` header. Facts it depends on (found by running it):
- configuration comes from ``GIFTLESS_CONFIG_STR``; unknown keys stop it; it reads ``.env`` files
  and ``GIFTLESS_*`` variables, so it gets a clean environment;
- its authenticators are set up lazily by the first request, racily: one batch request before
  any parallel traffic;
- parallel first uploads into a new repository folder can fail with 500: folders are made first;
- a repository name has exactly two levels (``ns/name``): its token scopes split on "/".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import requests

from .server_process import stop, wait_for_log_line

SERVING = r"Serving on http://127\.0\.0\.1:(\d+)"
_START_TIMEOUT_S = 30


class Giftless:
    """A giftless process; ``secret`` set: tokens are required (mint them with :meth:`token`)."""

    def __init__(self, data_dir: Path, secret: str | None = None) -> None:
        self.data_dir = data_dir
        self.storage = data_dir / "objects"
        self.secret = secret
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict:
        action_signer = {
            "factory": "giftless.auth.jwt:factory",
            "options": {
                "algorithm": "HS256",
                "private_key": self.secret or "anonymous-mode-actions",
                "default_lifetime": 900,
            },
        }
        users = [action_signer] if self.secret else ["giftless.auth.allow_anon:read_write"]
        return {
            "LEGACY_ENDPOINTS": False,
            "AUTH_PROVIDERS": users,
            "PRE_AUTHORIZED_ACTION_PROVIDER": action_signer,
            "TRANSFER_ADAPTERS": {
                "basic": {
                    "factory": "giftless.transfer.basic_streaming:factory",
                    "options": {
                        "storage_class": "giftless.storage.local_storage:LocalStorage",
                        "storage_options": {"path": str(self.storage)},
                        "action_lifetime": 900,
                    },
                }
            },
        }

    def start(self) -> Giftless:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "giftless.log", "wb")  # noqa: SIM115 - closed in stop()
        self._log = log
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
            "GIFTLESS_CONFIG_STR": json.dumps(self.config()),
        }
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waitress",
                "--listen=127.0.0.1:0",
                "--threads=8",
                "--max-request-body-size=8589934592",
                "giftless.wsgi_entrypoint:app",
            ],
            cwd=self.data_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            found = wait_for_log_line(
                self._process, self.data_dir / "giftless.log", SERVING, _START_TIMEOUT_S
            )
        except RuntimeError:
            self.stop()
            raise
        self.port = int(found.group(1))
        requests.post(
            f"{self.url}/warm/up.git/info/lfs/objects/batch",
            timeout=10,
            json={"operation": "download", "objects": [{"oid": "0" * 64, "size": 1}]},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process)
            self._process = None
            self._log.close()

    def log_text(self) -> str:
        return (self.data_dir / "giftless.log").read_text(errors="replace")

    def prepare_repo(self, name: str) -> None:
        """Make the repository's storage folder before any upload (see the module docstring)."""
        (self.storage / name).mkdir(parents=True, exist_ok=True)

    def object_path(self, name: str, oid: str) -> Path:
        return self.storage / name / oid

    def token(self, namespace: str, lifetime_s: int = 3600, key: str | None = None) -> str:
        """A user token for every repository of ``namespace``, read and write."""
        now = int(time.time())
        claims = {
            "sub": "lfsrepo-tests",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "scopes": [f"obj:{namespace}/*:read,write"],
        }
        return jwt.encode(claims, key or self.secret or "", algorithm="HS256")
