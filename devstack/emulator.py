"""The embedded AWS emulator: a moto server on loopback, faithful on atomicity."""

from __future__ import annotations

import logging
import urllib.request
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from devstack.moto_atomic import serialise_dynamodb_writes

REGION = "us-east-1"


class Emulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        serialise_dynamodb_writes()
        # One access-log line per AWS call drowns everything else the stack prints.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.url = ""

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
        return client_for(self.url, service)


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
