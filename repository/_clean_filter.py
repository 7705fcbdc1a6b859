"""git's clean filter for LFS files lfsrepo has already stored (see staging.py).

Run by ``git add`` as ``python -I _clean_filter.py MANIFEST PATH``, with the file's content on
stdin. When PATH is in the manifest and is still the version its pointer was made from, it prints
that pointer without reading stdin (git does not mind). Otherwise git-lfs's own filter cleans what
git is feeding in. Only the standard library: this runs once per staged file.
"""

import json
import os
import sys


def main() -> None:
    manifest, path = sys.argv[1], sys.argv[2]
    with open(manifest, encoding="utf-8") as handle:
        entry = json.load(handle).get(path)
    if entry is not None:
        try:
            status = os.stat(path)
        except OSError:
            status = None
        now = (
            None
            if status is None
            else (
                status.st_dev,
                status.st_ino,
                status.st_size,
                status.st_mtime_ns,
                status.st_ctime_ns,
            )
        )
        then = (
            entry["device"],
            entry["inode"],
            entry["size"],
            entry["mtime_ns"],
            entry["ctime_ns"],
        )
        if now == then:
            sys.stdout.write(entry["pointer"])
            sys.stdout.flush()
            return
    os.execvp("git-lfs", ["git-lfs", "clean", "--", path])


if __name__ == "__main__":
    main()
