"""``evaluate``: rules, score, doctrine and clock, as one pure function.

The result depends only on the event, the compiled policy and ``now`` (passed in, never
read from the system clock), so replaying history under a policy gives the same answers
and two processes deciding the same event agree byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from ._model import Decision, Event, GatingDecision, Mitigation, TieD, WindowState
from ._policy import CompiledMitigation, Policy

__all__ = ["evaluate"]

_MISSING: Final = "-"


def _text_of(value: object) -> str:
    if value is None:
        return _MISSING
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _mitigation(m: CompiledMitigation, event: Event) -> Mitigation:
    reason = "".join([p if isinstance(p, str) else _text_of(p(event)) for p in m.reason_parts])
    target = None if m.target is None else m.target(event)
    return Mitigation(
        action=m.action,
        target=None if target is None else str(target),
        reason=reason,
        confidence=m.confidence,
        ttl_seconds=m.ttl_seconds,
    )


def _clamp_impact(value: float) -> float:
    # Rounded so 0.35 - 0.10 is 0.25, not 0.24999999999999997, in every stored decision.
    return round(min(1.0, max(0.0, value)), 4)


def _drift_ms(now: datetime, timestamp: datetime) -> int:
    """``now - timestamp`` in whole milliseconds, signed, rounded half to even.

    Integer arithmetic (microseconds) so the result is exact for any representable pair;
    float division would lose precision for far-off timestamps.
    """
    delta = now - timestamp
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    ms, rest = divmod(micros, 1000)
    if rest > 500 or (rest == 500 and ms % 2 == 1):
        ms += 1
    return ms


def evaluate(
    event: Event,
    policy: Policy,
    *,
    now: datetime,
    windows: Mapping[str, WindowState] | None = None,
) -> Decision:
    """Decide one normalized event under ``policy`` at instant ``now`` (timezone-aware).

    ``windows`` is the state of the windowed rules (rule id → what the window store saw
    for this event, see :meth:`Policy.window_probes`): an explicit input, so evaluation
    stays pure. A windowed rule fires when its count reached the threshold and proposes
    its mitigation only when ``armed`` (first crossing outside the cooldown). Without
    ``windows`` (replays, simulations) windowed rules do not fire.
    """
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    c = policy._compiled

    # --- rules, in order
    fired: list[str] = []
    score = 0
    anomaly: float | None = None
    ai_score = 0.0
    proposed: list[tuple[Mitigation, bool]] = []
    seen_targets: set[tuple[str, str | None]] = set()
    for rule in c.rules:
        if rule.fallback and fired:
            continue
        if rule.unless_fired and not rule.unless_fired.isdisjoint(fired):
            continue
        if not rule.when(event):
            continue
        armed = True
        if rule.window is not None:
            state = None if windows is None else windows.get(rule.id)
            if state is None or state.count < rule.window.threshold:
                continue
            armed = state.armed
        fired.append(rule.id)
        score += rule.points
        if rule.anomaly_score is not None and (anomaly is None or rule.anomaly_score > anomaly):
            anomaly = rule.anomaly_score
        if rule.ai_adversarial_score is not None and rule.ai_adversarial_score > ai_score:
            ai_score = rule.ai_adversarial_score
        if rule.mitigation is not None and armed:
            mitigation = _mitigation(rule.mitigation, event)
            key = (mitigation.action, mitigation.target)
            if key not in seen_targets:  # two rules asking for the same block: one block
                seen_targets.add(key)
                proposed.append((mitigation, rule.mitigation.disruptive))

    score = min(max(score, 0), c.max_score)
    level = c.levels[score]

    # --- doctrine
    has_disruptive = False
    for _, disruptive in proposed:
        if disruptive:
            has_disruptive = True
            break
    persona = event.persona
    kept = proposed
    gating: GatingDecision = "allow"
    if persona is None and event.classification is None:
        tie_d = c.plain_tie_d[has_disruptive]
    else:
        roe = False
        limited = False
        service = c.base_service_impact if has_disruptive else 0.0
        user = c.base_user_impact if has_disruptive else 0.0
        doctrine = None if persona is None else c.personas.get(persona)
        if doctrine is not None and (
            doctrine.classifications is None or event.classification in doctrine.classifications
        ):
            roe = doctrine.rules_of_engagement
            remaining = has_disruptive
            cap = doctrine.max_disruptive
            if cap is not None:
                kept = []
                count = 0
                for item in proposed:
                    if item[1]:
                        if count >= cap:
                            limited = True
                            continue
                        count += 1
                    kept.append(item)
                remaining = count > 0
            if limited:
                service = _clamp_impact(service - doctrine.service_reduction)
                user = _clamp_impact(user - doctrine.user_reduction)
            if doctrine.require_approval and remaining:
                gating = "require_approval"
        tie_d = TieD(
            roe_applied=roe,
            disruption_limited=limited,
            ao_required=roe,
            persona=persona,
            classification=event.classification,
            service_impact=service,
            user_impact=user,
            gating_decision=gating,
            policy_version=policy.version,
            policy_hash=policy.hash,
        )

    # --- clock
    if event.timestamp is None:
        drift: int | None = None
        stale = False
    else:
        drift = _drift_ms(now, event.timestamp)
        stale = abs(drift) > c.clock_skew_ms

    rules_text = ", ".join(fired) or "no rule"
    summary = f"{event.event_type} from {event.source}: {level} ({score}) — {rules_text}"
    if gating == "require_approval":
        summary += "; approval required"
    if event.notes:
        summary += "; input: " + "; ".join(event.notes)

    return Decision(
        threat_level=level,
        score=score,
        anomaly_score=c.default_anomaly_score if anomaly is None else anomaly,
        ai_adversarial_score=ai_score,
        rules_triggered=tuple(fired),
        mitigations=tuple(m for m, _ in kept),
        tie_d=tie_d,
        clock_drift_ms=drift,
        clock_stale=stale,
        policy_hash=policy.hash,
        summary=summary,
    )
