"""`python -m devstack` (what `make run` runs); `python -m devstack invoke|event ...`
(`make invoke`, `make event`) work against it from another terminal."""

import sys

from devstack import running, server

if sys.argv[1:2] and sys.argv[1] in ("invoke", "event"):
    raise SystemExit(running.main(sys.argv[1:]))
raise SystemExit(server.main())
