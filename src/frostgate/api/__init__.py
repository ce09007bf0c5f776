"""Thin HTTP layer: routers parse, call a service and shape the answer."""

from frostgate.api.app import build_app

__all__ = ["build_app"]
