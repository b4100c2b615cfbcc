"""`python -m devstack` (what `make run` runs)."""

from devstack.server import main

# Guarded: the API containers are spawned processes, which must not run the stack again.
if __name__ == "__main__":
    raise SystemExit(main())
