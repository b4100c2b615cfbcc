"""`python -m devstack` (what `make run` runs); `python -m devstack invoke|event ...`
(`make invoke`, `make event`) work against it from another terminal."""

import sys

from devstack import running, server

# Guarded: the API containers are spawned processes, which must not run the stack again.
if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in ("invoke", "event"):
        raise SystemExit(running.main(sys.argv[1:]))
    raise SystemExit(server.main())
