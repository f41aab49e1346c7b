"""stigmer: a local-first platform for running AI agents durably."""

__version__ = "0.1.0"
