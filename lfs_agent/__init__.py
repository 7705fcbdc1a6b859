"""A git-lfs custom transfer agent that uploads large files in parallel parts."""
