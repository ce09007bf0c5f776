"""Periodic jobs run inside ``frostgate serve`` (leader-elected) and by the CLI."""

from frostgate.jobs.anchor import Anchorer, AnchorOutcome

__all__ = ["AnchorOutcome", "Anchorer"]
