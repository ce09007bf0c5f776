"""Alert delivery: the outbox worker, retry policy and signed sends via ``egress``."""

from frostgate.delivery.worker import DeliverySettings, DeliveryWorker

__all__ = ["DeliverySettings", "DeliveryWorker"]
