"""Run by ``scripts/smoke-wheel`` with an installed (not editable) lfsrepo: push a multipart
object through the agent to the local server and clone it back, byte for byte.

It must not import from the source tree: it is run from a temporary folder, so ``repository``
comes from the wheel.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import repository
from repository import Repository
from repository.testing import LocalGitServer

MiB = 1024**2


def main() -> int:
    installed = Path(repository.__file__).resolve()
    if "site-packages" not in installed.parts:
        raise SystemExit(f"smoke_wheel: repository comes from {installed}, not from the wheel")
    work = Path(tempfile.mkdtemp(prefix="lfsrepo-smoke-"))
    with LocalGitServer(multipart_threshold=MiB, chunk_size=MiB) as server:
        url = server.create_repo("smoke/wheel")
        data = os.urandom(3 * MiB + 17)
        log = work / "agent.log"
        os.environ["LFSREPO_AGENT_LOG"] = str(log)
        repo = Repository(work / "clone", clone_from=url)
        with repo.commit("multipart through the installed agent"):
            Path("weights.bin").write_bytes(data)
        Repository(work / "copy", clone_from=url)
    if (work / "copy" / "weights.bin").read_bytes() != data:
        raise SystemExit("smoke_wheel: the object came back different")
    if "part 4 done" not in log.read_text():
        raise SystemExit("smoke_wheel: the push did not go through the agent in parts")
    print(
        f"smoke_wheel: Python {sys.version.split()[0]}: "
        f"{hashlib.sha256(data).hexdigest()[:12]} pushed in 4 parts and back: OK"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
