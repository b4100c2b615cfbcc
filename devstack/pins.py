"""The layer's pins against what is installed: the test environment, or a built layer.

layers/common/requirements.txt pins every package the layer bundles. The tests must
run those versions (tests/unit/test_layer_pins.py), and `sam build` must bundle them
and nothing else: `python -m devstack.pins .aws-sam/build/CommonLayer/python`
(`make sam-build` runs it) compares the built layer's dist-info with the pins.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "layers" / "common" / "requirements.txt"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    """PEP 503 normalised name: dist-info and requirement files spell names differently."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(path: Path = LOCK) -> dict[str, str]:
    """{package: version} of every `name==version` line of a pip requirements file."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        found = _PIN.match(line.strip())
        if found:
            pins[canonical(found.group(1))] = found.group(2)
    return pins


def installed(site: Path | None = None) -> dict[str, str]:
    """{package: version} of the distributions in `site`, or in this interpreter."""
    dists = metadata.distributions(path=[str(site)]) if site else metadata.distributions()
    return {canonical(d.metadata["Name"]): d.version for d in dists}


def drift(pins: Mapping[str, str], found: Mapping[str, str], *, exact: bool = False) -> list[str]:
    """Every pinned package missing or at another version; with `exact`, also every
    package present that the pins do not name (a layer must hold nothing else)."""
    problems = [
        f"{name}: pinned {version}, {'found ' + found[name] if name in found else 'not installed'}"
        for name, version in sorted(pins.items())
        if found.get(name) != version
    ]
    if exact:
        problems += [f"{name} {found[name]}: not pinned" for name in sorted(set(found) - set(pins))]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m devstack.pins SITE_DIR", file=sys.stderr)
        return 2
    site = Path(args[0])
    if not site.is_dir():
        print(f"{site} is not a directory: run sam build first", file=sys.stderr)
        return 2
    pins = lock_pins()
    problems = drift(pins, installed(site), exact=True)
    for problem in problems:
        print(f"{site}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{site}: the {len(pins)} packages pinned in {LOCK.name}, at their versions")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
