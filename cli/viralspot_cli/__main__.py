"""`python -m viralspot_cli`, the same as the `viralspot` console script."""

from viralspot_cli.main import main

main()
