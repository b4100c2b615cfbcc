"""`python -m devstack` (what `make run` runs)."""

from devstack.server import main

raise SystemExit(main())
