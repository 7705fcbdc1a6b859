"""lfsrepo's Repository workflow: large files in git repositories with Git LFS."""
