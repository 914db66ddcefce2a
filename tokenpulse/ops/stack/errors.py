"""The one error the native stack raises: a service could not be configured, started or made ready."""

from __future__ import annotations


class StackError(RuntimeError):
    """A service could not be configured, started or did not become ready."""
