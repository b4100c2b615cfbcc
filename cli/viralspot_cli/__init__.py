"""The `viralspot` command line: a client of the ViralSpot intake HTTP API.

Installed as a console script (`pip install -e '.[cli]'`); see `viralspot --help`.
"""
