"""``python -m lfs_agent``: the agent process git-lfs starts (see lfs_agent.agent)."""

import sys

from lfs_agent.agent import main

sys.exit(main())
