"""Configuration: typed settings, their sources, and the one resolve() that owns precedence.

The ground floor: imports no other stigmer package (only ``stigmer.errors``).
"""

from .keys import DEFAULT_MODELS, KEYS, PROVIDERS
from .model import Config, LlmSettings, Resolved, TemporalSettings
from .resolve import NO_PROVIDER, resolve

__all__ = ["DEFAULT_MODELS", "KEYS", "NO_PROVIDER", "PROVIDERS", "Config", "LlmSettings", "Resolved",
           "TemporalSettings", "resolve"]
