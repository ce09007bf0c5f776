"""``frostgate chaos``: real faults under load, then the invariants that must survive them.

The run owns everything it breaks (:mod:`.processes`): a private PostgreSQL cluster, a
private Redis, ``frostgate serve`` and a loopback webhook receiver (:mod:`.receiver`),
built per round by :mod:`.rig`. :mod:`.load` drives events through the egress client,
:mod:`.scenarios` injects the faults and :mod:`.invariants` judges storage, the ledger
and the outbox from the database itself.
"""

from frostgate.jobs.chaos.invariants import Invariant, check_ledger, check_stored
from frostgate.jobs.chaos.run import ChaosReport, run_chaos
from frostgate.jobs.chaos.scenarios import SCENARIOS, Scenario, ScenarioResult

__all__ = [
    "SCENARIOS",
    "ChaosReport",
    "Invariant",
    "Scenario",
    "ScenarioResult",
    "check_ledger",
    "check_stored",
    "run_chaos",
]
