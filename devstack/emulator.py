"""The embedded AWS emulator: a moto server on loopback, faithful on atomicity."""

from __future__ import annotations

import copy
import logging
import urllib.request
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from devstack.moto_atomic import serialise_dynamodb_writes
from devstack.moto_unsupported import answer_not_implemented

REGION = "us-east-1"


class Emulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        serialise_dynamodb_writes()
        answer_not_implemented()
        # One access-log line per AWS call drowns everything else the stack prints.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.url = ""
        # Set on a view made by with_dynamodb_at: DynamoDB served by another engine.
        self.dynamodb_url: str | None = None

    def with_dynamodb_at(self, url: str) -> Emulator:
        """This moto server for every service but DynamoDB, which `url` serves
        (DynamoDB Local). A view of the one moto server: stop() and reset() act on moto
        only; DynamoDB Local has its own reset."""
        view = copy.copy(self)
        view.dynamodb_url = url
        return view

    def endpoint(self, service: str) -> str:
        if service == "dynamodb" and self.dynamodb_url:
            return self.dynamodb_url
        return self.url

    def endpoint_environment(self) -> dict[str, str]:
        """What points the handlers' boto3 clients here: botocore prefers
        AWS_ENDPOINT_URL_<SERVICE> to AWS_ENDPOINT_URL."""
        env = {"AWS_ENDPOINT_URL": self.url}
        if self.dynamodb_url:
            env["AWS_ENDPOINT_URL_DYNAMODB"] = self.dynamodb_url
        return env

    def start(self) -> Emulator:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every resource and item (between tests)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310  # nosec B310 - own loopback URL
            pass

    def client(self, service: str) -> Any:
        return client_for(self.endpoint(service), service)


def client_for(url: str, service: str) -> Any:
    """A client of an emulator at `url`, this process's or another's (`make run`)."""
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the emulator's fixed dummy
    )


# Environment every handler gets on the emulator, on top of what the template sets.
EMULATOR_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "ViralSpot",
}
