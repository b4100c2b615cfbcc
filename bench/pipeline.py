"""DynamoDB calls and wall time per processed profile (100 reels, sample provider).

    PYTHONPATH=layers/common:. python bench/pipeline.py [--profiles N] [--dynamodb-local]

Target (issue 3): at most 10 DynamoDB calls per profile for the pipeline itself.
Discovery (queueing the similar profiles through the intake rule) is counted apart:
it costs one intake per discovered profile, whatever the pipeline costs.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.common import local_stack, table
from viralspot import bootstrap
from viralspot.jobs import Source
from viralspot.pipeline import Result
from viralspot.providers.sample import SampleProvider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=20)
    parser.add_argument(
        "--dynamodb-local",
        action="store_true",
        help="DynamoDB on DynamoDB Local (make dynamodb-local) instead of moto",
    )
    args = parser.parse_args()

    rows = []
    with local_stack(dynamodb_local=args.dynamodb_local) as (_, _, calls):
        for fan_out, label in ((0, "pipeline only (no discovery)"), (5, "with discovery of 5")):
            ctx = bootstrap.services()
            worker = ctx.worker(SampleProvider())
            worker = worker.__class__(
                **{
                    **worker.__dict__,
                    "policy": worker.policy.__class__(
                        **{**worker.policy.__dict__, "discovery_fan_out": fan_out}
                    ),
                }
            )
            per_profile_calls = []
            per_profile_ms = []
            for i in range(args.profiles):
                name = f"bench_{fan_out}_{i}"
                answer = ctx.intake(
                    name,
                    Source.FRONTEND,
                ).answer
                body = (
                    f'{{"username":"{name}","request_id":"{answer.request_id}",'
                    f'"priority":"HIGH","depth":0}}'
                )
                calls.reset()
                start = time.perf_counter()
                assert worker.process(body) is Result.COMPLETED
                per_profile_ms.append((time.perf_counter() - start) * 1000)
                per_profile_calls.append(calls.of("dynamodb"))
                breakdown = dict(calls.operations)
            rows.append(
                [
                    label,
                    statistics.median(per_profile_calls),
                    max(per_profile_calls),
                    f"{statistics.median(per_profile_ms):.0f}",
                    ", ".join(f"{op} x{n}" for op, n in sorted(breakdown.items())),
                ]
            )
    engine = "DynamoDB Local" if args.dynamodb_local else "moto"
    print(
        f"Pipeline per profile: 100 reels, sample provider, {args.profiles} profiles each, on {engine}"
    )
    print(
        table(
            ["case", "DynamoDB calls (median)", "max", "wall ms (median)", "last profile's calls"],
            rows,
        )
    )
    print("Target: <= 10 DynamoDB calls for the pipeline itself.")


if __name__ == "__main__":
    main()
