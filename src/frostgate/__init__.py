"""FrostGate: a multi-tenant security decision service with a tamper-evident ledger."""

__version__ = "0.1.0"
