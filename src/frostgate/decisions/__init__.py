"""The decision service: normalize, evaluate under the policy, persist, answer.

This package orchestrates the pure engine and the store; routers call it and shape
the answer. (It sits between ``engine``, which must not do I/O, and ``store``, which
must not decide anything: see docs/architecture.md.)
"""

from frostgate.decisions.service import DecisionService, Outcome
from frostgate.decisions.verify import ChainReport, verify_chain

__all__ = ["ChainReport", "DecisionService", "Outcome", "verify_chain"]
