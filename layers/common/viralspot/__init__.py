"""ViralSpot profile intake: the shared domain package, deployed as a Lambda layer."""
