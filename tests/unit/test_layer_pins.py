"""The layer is reproducible and the tests run what it bundles: every layer dependency
is pinned with its hashes in layers/common/requirements.txt, the test environment has
exactly those versions, and nothing else pins them a second time."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.pins import LOCK, canonical, drift, installed, lock_pins

ROOT = LOCK.parent.parent.parent
LAYER_IN = LOCK.with_suffix(".in")


def test_the_tests_run_exactly_the_layers_versions() -> None:
    pins = lock_pins()
    assert drift(pins, installed()) == []


def test_the_sdk_is_pinned_in_step() -> None:
    pins = lock_pins()
    # boto3 and botocore are released together; a mismatched pair is a resolver accident.
    assert pins["boto3"] == pins["botocore"]
    assert {"boto3", "botocore", "s3transfer", "aws-lambda-powertools", "pydantic"} <= set(pins)


def test_every_pin_carries_hashes() -> None:
    blocks = re.split(r"\n(?=[A-Za-z])", LOCK.read_text(encoding="utf-8"))
    requirements = [b for b in blocks if "==" in b.split("\n", 1)[0]]
    assert len(requirements) == len(lock_pins())
    for block in requirements:
        assert "--hash=sha256:" in block, block.split("\n", 1)[0]


def test_every_direct_dependency_is_in_the_lock() -> None:
    direct = {
        canonical(re.split(r"[\[=<>!~;\s]", line, maxsplit=1)[0])
        for line in LAYER_IN.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    assert direct
    assert direct <= set(lock_pins())


def test_the_dev_requirements_take_the_pins_from_the_lock_alone() -> None:
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    assert "-r layers/common/requirements.in" in dev
    # make install constrains the test environment to the lock (its pins, not its
    # hashes: those would put every dev tool into pip's hash-checking mode).
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "layers/common/requirements.txt > $(VENV)/layer-pins.txt" in makefile
    assert "-r requirements-dev.txt -c $(VENV)/layer-pins.txt" in makefile
    own = {
        canonical(re.split(r"[\[=<>!~;\s]", line, maxsplit=1)[0])
        for line in dev
        if line.strip() and not line.startswith(("#", "-"))
    }
    assert own.isdisjoint(lock_pins()), "a layer dependency is pinned a second time"


def test_the_layer_build_installs_from_the_lock_hash_checked() -> None:
    makefile = (LOCK.parent / "Makefile").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements.txt" in makefile


def test_drift_reports_versions_missing_and_extra_packages() -> None:
    pins = {"boto3": "1.0.0", "six": "1.17.0"}
    assert drift(pins, {"boto3": "1.0.0", "six": "1.17.0", "extra": "1"}) == []
    assert drift(pins, {"boto3": "1.0.1"}) == [
        "boto3: pinned 1.0.0, found 1.0.1",
        "six: pinned 1.17.0, not installed",
    ]
    assert drift(pins, {"boto3": "1.0.0", "six": "1.17.0", "extra": "1"}, exact=True) == [
        "extra 1: not pinned"
    ]


def test_lock_pins_reads_names_as_pip_does(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text(
        "# comment\n"
        "Typing_Extensions==4.16.0 \\\n    --hash=sha256:ab\n"
        "aws-lambda-powertools[tracer]==3.37.0 ; python_version >= '3.11'\n"
        "urllib3>=2\n",
        encoding="utf-8",
    )
    assert lock_pins(lock) == {"typing-extensions": "4.16.0", "aws-lambda-powertools": "3.37.0"}
