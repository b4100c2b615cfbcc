"""Cold start: how long each handler module takes to import, and how big the artifacts are.

    PYTHONPATH=layers/common:. python bench/coldstart.py [--runs 7] [--built-runs 3] [--no-sam]

Each figure is the median of fresh interpreters running
`python -X importtime -c "import <handler module>"`; the import time is the sum
of the top-level entries of `-X importtime` after interpreter start-up (so the
interpreter's own start is not counted). The import's CPU time (time.process_time
around the import, in the same interpreter) is printed beside it: on a dedicated
core the two agree (the files are in the page cache), while on a shared machine the
wall time also counts the wait for a core, so the < 300 ms verdict is on CPU time.

Cases:

- source tree, the venv's python, bytecode cached (one unmeasured warm-up run
  writes it under a temporary PYTHONPYCACHEPREFIX, never into the repository),
  LAMBDA_TASK_ROOT set as in Lambda: tracing disabled (POWERTOOLS_TRACE_DISABLED=1),
  then tracing on as deployed (`Tracing: Active`: Powertools' Tracer patches the
  supported libraries it finds). Tracer imports the X-Ray SDK in both cases;
  the difference between them is the patching;
- when the SAM CLI is available: the `sam build` artifacts on python3.13 (the
  template's runtime), laid out as Lambda does (layer on the path, function dir
  as the working directory), tracing on, without writing bytecode (/opt and
  /var/task are read-only in Lambda): first as built (the layer's Makefile already
  ships it precompiled; the function's own app.py is not), then with the layer and
  function precompiled (compileall, unchecked-hash) in a copy.

Sizes: `du` of each built function and the layer, and the size of their zip.
Goal: each handler imports in <= 300 ms (CPU time of the import, see above).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import table

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = {
    "request_profile": "RequestProfileFunction",
    "process_profile": "ProcessProfileFunction",
    "retry_failed": "RetryFailedFunction",
}
MARK = "--bench-import-start--"
CPU_MARK = "--bench-import-cpu-ms--"
# Candidates for a cut: what each costs where it is first imported (cumulative).
WATCH = {
    "aws_xray_sdk.core": "X-Ray SDK (Tracer)",
    "aws_lambda_powertools.event_handler.openapi.models": "OpenAPI models",
    "viralspot.pipeline": "viralspot.pipeline",
    "boto3": "boto3",
    "pydantic": "pydantic",
}
BUILD_DIR = Path(tempfile.gettempdir()) / "vs-build"
TARGET_PYTHON = "3.13"


@dataclass
class Entry:
    self_us: int
    cumulative_us: int
    level: int
    name: str


@dataclass
class Run:
    total_ms: float
    wall_ms: float
    cpu_ms: float
    direct: dict[str, float]  # the handler's direct imports: cumulative ms
    packages: dict[str, float]  # top-level package: self ms summed
    watched: dict[str, float]  # cumulative ms of the modules in WATCH, where imported
    modules: int


def parse(stderr: str) -> list[Entry]:
    """`-X importtime` lines after the start marker, in print order (children first)."""
    _, _, tail = stderr.partition(MARK)
    entries = []
    for line in tail.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line.split(":", 1)[1].split("|", 2)
        raw_name = name[1:]  # one space separates the column from the indented name
        level = (len(raw_name) - len(raw_name.lstrip(" "))) // 2
        entries.append(Entry(int(self_us), int(cumulative), level, raw_name.strip()))
    return entries


def summarise(entries: list[Entry], wall_ms: float, cpu_ms: float) -> Run:
    total = sum(e.cumulative_us for e in entries if e.level == 0) / 1000
    # In print order a module's imports come before it: the level-1 entries since
    # the previous top-level line belong to the next top-level line.
    direct: dict[str, float] = {}
    pending: dict[str, float] = {}
    for entry in entries:
        if entry.level == 1:
            pending[entry.name] = entry.cumulative_us / 1000
        elif entry.level == 0:
            direct.update(pending)
            pending = {}
    packages: dict[str, float] = defaultdict(float)
    for entry in entries:
        packages[entry.name.split(".", 1)[0]] += entry.self_us / 1000
    watched = {e.name: e.cumulative_us / 1000 for e in entries if e.name in WATCH}
    return Run(total, wall_ms, cpu_ms, direct, dict(packages), watched, len(entries))


def import_once(python: str, module: str, env: dict[str, str], cwd: Path) -> Run:
    code = (
        f"import sys, time; sys.stderr.write({MARK!r} + '\\n'); cpu = time.process_time()\n"
        f"import {module}\n"
        f"sys.stderr.write({CPU_MARK!r} + str((time.process_time() - cpu) * 1000) + '\\n')"
    )
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own interpreter and module names
        [python, "-X", "importtime", "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"import {module} failed:\n{done.stderr[-2000:]}")
    cpu = float(done.stderr.rpartition(CPU_MARK)[2].split()[0])
    return summarise(parse(done.stderr), wall, cpu)


@dataclass
class Case:
    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def median_total(self) -> float:
        return statistics.median(r.total_ms for r in self.runs)

    @property
    def median_cpu(self) -> float:
        return statistics.median(r.cpu_ms for r in self.runs)

    @property
    def median_wall(self) -> float:
        return statistics.median(r.wall_ms for r in self.runs)

    def median_of(self, attribute: str) -> dict[str, float]:
        names: set[str] = set()
        for run in self.runs:
            names |= set(getattr(run, attribute))
        return {
            n: statistics.median(getattr(r, attribute).get(n, 0.0) for r in self.runs)
            for n in names
        }

    def top(self, attribute: str, n: int = 5, skip: tuple[str, ...] = ()) -> str:
        ranked = sorted(
            ((k, v) for k, v in self.median_of(attribute).items() if not k.startswith(skip)),
            key=lambda kv: -kv[1],
        )[:n]
        return ", ".join(f"{k} {v:.0f}" for k, v in ranked)


def base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POWERTOOLS_", "AWS_", "LAMBDA_", "PYTHONPYCACHEPREFIX"))
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    return env


def source_cases(runs: int, pycache: Path) -> list[tuple[str, Case]]:
    out = []
    for traced in (False, True):
        for handler in HANDLERS:
            env = base_env()
            env["PYTHONPATH"] = f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT}"
            env["PYTHONPYCACHEPREFIX"] = str(pycache)
            # As in Lambda in both cases: outside it, the X-Ray recorder builds a
            # sampling client at import (about a second here), which Lambda never does.
            env["LAMBDA_TASK_ROOT"] = str(ROOT)
            if not traced:
                env["POWERTOOLS_TRACE_DISABLED"] = "1"
            module = f"functions.{handler}.app"
            import_once(sys.executable, module, env, ROOT)  # warm-up: writes bytecode
            label = "source, tracing on" if traced else "source, tracing off"
            case = Case(
                label, [import_once(sys.executable, module, env, ROOT) for _ in range(runs)]
            )
            out.append((handler, case))
    return out


def find_sam() -> str | None:
    found = shutil.which("sam")
    if found:
        return found
    fallback = Path(tempfile.gettempdir()) / "samvenv" / "bin" / "sam"
    return str(fallback) if fallback.exists() else None


def find_target_python() -> str | None:
    found = shutil.which(f"python{TARGET_PYTHON}")
    if not found:
        return None
    env = {**os.environ, "PYENV_VERSION": _pyenv_versions()}
    probe = subprocess.run(  # noqa: S603
        [found, "-c", "import sys; print(sys.version_info[:2])"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return found if probe.returncode == 0 else None


def _pyenv_versions() -> str:
    # pyenv shims pick the interpreter from PYENV_VERSION; keep the default first.
    current = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    return f"{current}:{TARGET_PYTHON}.0"


def sam_build(sam: str) -> bool:
    env = {**os.environ, "PYENV_VERSION": _pyenv_versions()}
    done = subprocess.run(  # noqa: S603
        [
            sam,
            "build",
            "-t",
            "infra/template.yaml",
            "--build-dir",
            str(BUILD_DIR),
            "--cache-dir",
            str(BUILD_DIR.with_name("vs-sam-cache")),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"sam build failed (rc {done.returncode}):\n{done.stderr[-1500:]}")
        return False
    return True


def largest_packages(layer: Path, n: int = 5) -> str:
    """The layer's biggest top-level directories (MB unzipped)."""
    python = layer / "python"
    sized = []
    for child in python.iterdir():
        if child.is_dir() and not child.name.endswith(".dist-info"):
            total = sum(p.stat().st_size for p in child.rglob("*") if p.is_file())
            sized.append((total / 1e6, child.name))
    return ", ".join(f"{name} {mb:.1f}" for mb, name in sorted(sized, reverse=True)[:n])


def size(path: Path) -> tuple[float, float, int]:
    """(MB on disk, MB zipped, files)."""
    files = [p for p in path.rglob("*") if p.is_file()]
    disk = sum(p.stat().st_size for p in files) / 1e6
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for p in files:
                archive.write(p, p.relative_to(path))
        zipped = handle.tell() / 1e6
    return disk, zipped, len(files)


def built_cases(
    python: str, runs: int, root: Path, label: str, *, traced: bool = True
) -> list[tuple[str, Case]]:
    out = []
    for handler, function_id in HANDLERS.items():
        env = base_env()
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # /opt and /var/task are read-only
        env["PYTHONPATH"] = str(root / "CommonLayer" / "python")
        env["LAMBDA_TASK_ROOT"] = str(root / function_id)
        env["PYENV_VERSION"] = _pyenv_versions()
        if not traced:
            env["POWERTOOLS_TRACE_DISABLED"] = "1"
        case = Case(
            label, [import_once(python, "app", env, root / function_id) for _ in range(runs)]
        )
        out.append((handler, case))
    return out


def precompiled_copy(python: str) -> Path:
    target = BUILD_DIR.with_name("vs-build-compiled")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(BUILD_DIR, target)
    env = {**os.environ, "PYENV_VERSION": _pyenv_versions()}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(  # noqa: S603
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(target),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    return target


# Candidate cuts measured alone in the precompiled layer: (label, setup, timed).
EXPERIMENTS = (
    ("import boto3 (viralspot.adapters.aws and .codec import it)", "", "import boto3"),
    (
        "import botocore.session, botocore.client (clients without boto3)",
        "",
        "import botocore.session, botocore.client",
    ),
    (
        "import aws_xray_sdk.core after boto3 (Tracer, even disabled)",
        "import boto3",
        "import aws_xray_sdk.core",
    ),
    (
        "aws_xray_sdk patch_all() after boto3 (Tracer, tracing on)",
        "import boto3, aws_xray_sdk.core",
        "aws_xray_sdk.core.patch_all()",
    ),
    (
        "aws_xray_sdk patch(['botocore']) after boto3",
        "import boto3, aws_xray_sdk.core",
        "aws_xray_sdk.core.patch(['botocore'])",
    ),
)


def snippet_ms(python: str, root: Path, setup: str, timed: str, runs: int) -> float:
    """Median wall ms of `timed` after `setup`, fresh interpreter each run."""
    env = base_env()
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = str(root / "CommonLayer" / "python")
    env["LAMBDA_TASK_ROOT"] = str(root)
    env["PYENV_VERSION"] = _pyenv_versions()
    code = f"import time\n{setup}\nt = time.perf_counter()\n{timed}\nprint((time.perf_counter() - t) * 1000)"
    samples = []
    for _ in range(runs):
        done = subprocess.run(  # noqa: S603
            [python, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True
        )
        samples.append(float(done.stdout.strip()))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per source case")
    parser.add_argument("--built-runs", type=int, default=3, help="per built-artifact case")
    parser.add_argument(
        "--no-sam", action="store_true", help="skip sam build, sizes and built cases"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vs-pycache-") as pycache:
        cases = source_cases(args.runs, Path(pycache))

    sizes: list[list[str]] = []
    experiments: list[list[str]] = []
    sam = None if args.no_sam else find_sam()
    python = find_target_python()
    if args.no_sam:
        notes.append("sam build skipped (--no-sam): no sizes, no built-artifact cases.")
    elif sam is None:
        notes.append(
            "SAM CLI not found (PATH or /tmp/samvenv/bin/sam): no sizes, no built-artifact cases."
        )
    elif sam_build(sam):
        for function_id in (*HANDLERS.values(), "CommonLayer"):
            disk, zipped, files = size(BUILD_DIR / function_id)
            sizes.append([function_id, f"{disk:.1f}", f"{zipped:.1f}", str(files)])
        if python is None:
            notes.append(f"python{TARGET_PYTHON} not found: built artifacts not imported.")
        else:
            py = f"py{TARGET_PYTHON}"
            cases += built_cases(
                python, args.built_runs, BUILD_DIR, f"built {py}, as built, tracing on"
            )
            compiled = precompiled_copy(python)
            experiments = [
                [label, f"{snippet_ms(python, compiled, setup, timed, args.runs):.0f}"]
                for label, setup, timed in EXPERIMENTS
            ]
            cases += built_cases(
                python, args.built_runs, compiled, f"built {py}, precompiled, tracing on"
            )
            cases += built_cases(
                python,
                args.built_runs,
                compiled,
                f"built {py}, precompiled, tracing off",
                traced=False,
            )

    rows = []
    for handler, case in cases:
        rows.append(
            [
                handler,
                case.label,
                f"{case.median_total:.0f}",
                f"{case.median_cpu:.0f}",
                f"{case.median_wall:.0f}",
                "yes" if case.median_cpu <= 300 else "no",
                case.top("direct", skip=("functions",)),
                case.top("packages", skip=("functions", "app")),
            ]
        )
    print(
        f"Handler import time, median of fresh interpreters ({args.runs} source, {args.built_runs} built); load average {os.getloadavg()[0]:.1f}"
    )
    print(
        table(
            [
                "handler",
                "case",
                "import ms (median)",
                "import CPU ms",
                "process wall ms",
                "CPU <= 300 ms",
                "top 5 direct imports (cumulative ms)",
                "top 5 packages (self ms)",
            ],
            rows,
        )
    )
    print()
    print("Cumulative import ms of candidate cuts, where first imported (0: not imported)")
    print(
        table(
            ["handler", "case", *WATCH.values()],
            [
                [
                    handler,
                    case.label,
                    *(f"{case.median_of('watched').get(m, 0.0):.0f}" for m in WATCH),
                ]
                for handler, case in cases
            ],
        )
    )
    if experiments:
        print()
        print(
            table(
                [f"cut experiment (built layer, precompiled, py{TARGET_PYTHON})", "median ms"],
                experiments,
            )
        )
    if sizes:
        print()
        print(table(["artifact (sam build)", "MB unzipped", "MB zipped", "files"], sizes))
        print(f"Largest in the layer (MB unzipped): {largest_packages(BUILD_DIR / 'CommonLayer')}")
    for note in notes:
        print(note)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
