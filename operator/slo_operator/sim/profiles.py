"""Which performance profile the simulator uses."""

from __future__ import annotations

from pathlib import Path

from slo_operator.model.profiles import REFERENCE_PROFILES
from slo_operator.types import ProfileSet

MEASURED_PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "demo-cpu.json"
"""The demo model's profile measured by `latencyslo calibrate` (shipped by the worker)."""


def default_profiles() -> tuple[ProfileSet, str]:
    """(profiles, where from): the measured demo profile when shipped, else the reference."""
    if MEASURED_PROFILE.is_file():
        return ProfileSet.load(MEASURED_PROFILE), str(MEASURED_PROFILE)
    return REFERENCE_PROFILES, "built-in reference figures (slo_operator.model.profiles)"


def load_profiles(path: str | Path | None) -> tuple[ProfileSet, str]:
    """The profile at `path` (a ProfileSet JSON), or the default one."""
    if path is None:
        return default_profiles()
    try:
        return ProfileSet.load(path), str(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable ProfileSet JSON ({exc})") from exc
