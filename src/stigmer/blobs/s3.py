"""``S3BlobStore``: blobs in an S3-compatible bucket, for runners on several machines sharing one store.

Objects are ``PREFIX/<namespace>/<key>``. The endpoint comes from ``blobs.s3_endpoint`` (or the AWS SDK's own
``AWS_ENDPOINT_URL``); credentials only ever from the AWS SDK's credential chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, a profile, an instance role), never from the URL, and never logged: errors name the
bucket, the endpoint and the object, not who asked.

boto3 is synchronous, so every call runs in a worker thread (``asyncio.to_thread``) and the event loop keeps
serving heartbeats; it is imported here only, when an ``s3://`` URL is configured, so ``stigmer --help`` and a
local-only runner never pay for it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from .store import BlobMissing, BlobStore, blob_key, safe_namespace


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise ConfigError("blobs.url names an s3:// store, but boto3 is not installed",
                          hint="pip install boto3 (a dependency of stigmer: reinstall it), or use a file:// store"
                          ) from None
    return boto3


class S3BlobStore(BlobStore):
    """A bucket and a prefix; ``put`` skips the upload when the object is there already (same key, same bytes)."""

    def __init__(self, url: str, *, endpoint: str | None = None, client: Any = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or "@" in parts.netloc:
            raise ConfigError(f"blobs.url: not an s3://BUCKET/PREFIX URL: {parts.scheme}://{parts.hostname or ''}",
                              hint="set blobs.url to s3://BUCKET/PREFIX; credentials come from the AWS variables")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint = endpoint
        self.url = f"s3://{self.bucket}/{self.prefix}" + (f" at {endpoint}" if endpoint else "")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from botocore.config import Config as BotoConfig

            # Temporal owns retries of the activity or workflow task a blob belongs to; a few quick SDK retries
            # still smooth over one dropped connection.
            self._client = _boto3().session.Session().client(
                "s3", endpoint_url=self.endpoint or None,
                config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30))
        return self._client

    def _object(self, namespace: str, key: str) -> str:
        return "/".join(part for part in (self.prefix, safe_namespace(namespace), key) if part)

    def _namespace_prefix(self, namespace: str) -> str:
        return "/".join(part for part in (self.prefix, safe_namespace(namespace)) if part) + "/"

    def put_sync(self, namespace: str, data: bytes) -> str:
        key = blob_key(data)
        name = self._object(namespace, key)
        if not self._exists(name):
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data)
        return key

    def _exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
            return True
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def get_sync(self, namespace: str, key: str) -> bytes:
        from botocore.exceptions import ClientError

        name = self._object(namespace, key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                raise BlobMissing(f"blob {key[:12]}… of {namespace} is not in {self.url} (object {name})") from None
            raise

    def delete_namespace_sync(self, namespace: str) -> int:
        deleted = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._namespace_prefix(namespace)):
            names = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if names:  # at most 1000 per page, which is also delete_objects' limit
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": names, "Quiet": True})
                deleted += len(names)
        return deleted

    async def put(self, namespace: str, data: bytes) -> str:
        return await asyncio.to_thread(self.put_sync, namespace, data)

    async def get(self, namespace: str, key: str) -> bytes:
        return await asyncio.to_thread(self.get_sync, namespace, key)

    async def delete_namespace(self, namespace: str) -> int:
        return await asyncio.to_thread(self.delete_namespace_sync, namespace)
