"""Adapters that put unmodified third-party queues under the harness (see the README's tutorial)."""

__all__: list[str] = []
