"""Conflicts: another controller steers the same Deployment, so this LatencySLO must not act."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Conflict:
    """Why this LatencySLO must not act (another controller steers the same Deployment)."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A LatencySLO claiming a Deployment, for `find_conflict`."""

    created: str
    name: str


def find_conflict(
    *,
    name: str,
    deployment: str,
    hpas: Iterable[str],
    claims: Iterable[Claim],
) -> Conflict | None:
    """An HPA on the Deployment, or an older LatencySLO with the same target (oldest wins)."""
    hpa_names = sorted(set(hpas))
    if hpa_names:
        listed = ", ".join(hpa_names)
        return Conflict(
            "HorizontalPodAutoscaler",
            f"HorizontalPodAutoscaler {listed} also scales Deployment {deployment}: this "
            "LatencySLO changes nothing while it exists",
        )
    ordered = sorted(set(claims), key=lambda c: (c.created, c.name))
    if ordered and ordered[0].name != name:
        return Conflict(
            "DuplicateLatencySLO",
            f"LatencySLO {ordered[0].name} (older) already steers Deployment {deployment}: "
            "this LatencySLO changes nothing while it exists",
        )
    return None
