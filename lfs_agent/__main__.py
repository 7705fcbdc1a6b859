"""The agent process git-lfs starts: ``python -I <this file>`` (see lfs_agent.setup).

``python -m lfs_agent`` runs it too. Run by its path in isolated mode, nothing but the
interpreter's own site-packages is on ``sys.path``, so the folder holding lfs_agent (a user's or a
``--prefix`` site-packages, a source tree) goes in first, ahead of those site-packages as the user
site would be; the folder of this file itself never does (``-I``), nor the current directory.
"""

import os
import site
import sys


def _find_own_package() -> None:
    home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if home not in sys.path:
        own = set(site.getsitepackages())
        at = next((i for i, entry in enumerate(sys.path) if entry in own), len(sys.path))
        sys.path.insert(at, home)


if __spec__ is None:  # run by path, not with -m
    _find_own_package()

from lfs_agent.agent import main  # noqa: E402 - importable only once _find_own_package ran

sys.exit(main())
