"""An S3-compatible server on loopback: moto's server mode (a real HTTP endpoint in a thread), not its in-process mock.

The fixture gives AWS credentials through the AWS SDK's own variables (as a deployment would) and turns off
every other source of them (config files, the instance metadata service), so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .ports import free_port, wait_port

ACCESS_KEY = "AKIASTIGMERTEST00001"
SECRET_KEY = "stigmer-moto-secret-key-not-a-real-one"


@dataclass
class S3Server:
    endpoint: str
    bucket: str

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=self.endpoint)

    def object_keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def bodies(self) -> list[bytes]:
        client = self.client()
        return [client.get_object(Bucket=self.bucket, Key=key)["Body"].read() for key in self.object_keys()]


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[S3Server]:
    """moto's S3 on a free loopback port, with one empty bucket of this test's own (moto's state is per process)."""
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true"),
                        ("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config")),
                        ("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))):
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_port(port)
        s3 = S3Server(f"http://127.0.0.1:{port}", f"stigmer-blobs-{uuid.uuid4().hex[:8]}")
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()
