"""A real local git + Git LFS server for tests, demos and users' own test suites."""
