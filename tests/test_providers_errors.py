"""Errors that are not tied to one protocol double: keys, retry-after forms, and crossing process boundaries."""

from __future__ import annotations

import pickle
from email.utils import formatdate
from pathlib import Path
from time import time
from typing import Any

import httpx
import pytest

from stigmer.config import resolve
from stigmer.providers import registry
from stigmer.providers.errors import ProviderError
from stigmer.providers.names import infer_provider
from stigmer.providers.spec import ModelSpec

SPEC = ModelSpec(provider="openai", model="gpt-4o", base_url=None)


class StatusError(Exception):
    """Shaped like the SDKs' HTTP errors: a status code and the response."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, message: str = "boom") -> None:
        super().__init__(message)
        self.status_code = status
        self.response = httpx.Response(status, headers=headers or {})
        self.body = {"error": {"message": message}}


def test_openai_without_a_key_names_the_variable(stigmer_home: Path) -> None:
    cfg: Any = resolve({}, env={"STIGMER_HOME": str(stigmer_home)}, infer_provider=infer_provider)
    spec = registry.resolve_model(cfg, "gpt-4o")
    with pytest.raises(ProviderError) as info:
        registry.get_chat_model(spec, cfg)
    assert "OPENAI_API_KEY" in str(info.value)
    assert info.value.retryable is False


def test_openai_model_is_built_with_sdk_retries_off(stigmer_home: Path) -> None:
    env = {"STIGMER_HOME": str(stigmer_home), "OPENAI_API_KEY": "sk-test-not-real"}
    cfg: Any = resolve({}, env=env, infer_provider=infer_provider)
    model: Any = registry.get_chat_model(registry.resolve_model(cfg, "gpt-4o", {"max_tokens": "5"}), cfg)
    assert model.max_retries == 0
    assert model.max_tokens == 5


def test_openai_key_rejected_names_the_variable() -> None:
    error = registry.classify_error(StatusError(401), SPEC)
    assert (error.kind, error.retryable) == ("auth", False)
    assert "OPENAI_API_KEY" in str(error)


@pytest.mark.parametrize(("headers", "expected"), [({"retry-after": "3"}, 3.0), ({"retry-after-ms": "1500"}, 1.5),
                                                   ({}, None)])
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    error = registry.classify_error(StatusError(429, headers), SPEC)
    assert (error.retryable, error.retry_after) == (True, expected)


def test_retry_after_as_an_http_date() -> None:
    error = registry.classify_error(StatusError(503, {"retry-after": formatdate(time() + 30, usegmt=True)}), SPEC)
    assert error.retryable is True
    assert error.retry_after is not None and 25 <= error.retry_after <= 31


def test_unknown_failures_are_not_retried_and_say_so() -> None:
    error = registry.classify_error(TypeError("bad argument"), SPEC)
    assert error.retryable is False
    assert "TypeError: bad argument" in str(error)


def test_errors_survive_pickling_with_their_flags() -> None:
    error = registry.classify_error(StatusError(429, {"retry-after": "4"}), SPEC)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.retryable, copy.retry_after, str(copy)) == ("rate_limited", True, 4.0, str(error))


def test_classify_without_a_spec_still_says_whether_to_retry() -> None:
    error = registry.classify_error(StatusError(529))
    assert (error.kind, error.retryable) == ("overloaded", True)
