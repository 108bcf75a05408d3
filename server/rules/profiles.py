"""Per-credit-class thresholds (海关企业信用: 高级认证 / 一般认证 / 一般信用 / 失信).

Lower credit gets tighter corridors, shorter persistence and stop limits. A YAML file may
override any field of any class; fields it leaves out keep the class default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.payloads import describe_validation_error

CreditClass = Literal["advanced", "general_certified", "general", "dishonest"]
CREDIT_CLASSES: Final[tuple[CreditClass, ...]] = (
    "advanced",
    "general_certified",
    "general",
    "dishonest",
)


class CreditProfile(BaseModel):
    """Thresholds of the alarm rules for one enterprise credit class."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    credit: CreditClass = Field(description="the credit class these thresholds apply to")
    # --- fix quality ---------------------------------------------------------------
    uere_m: float = Field(
        default=5.0, gt=0, description="user equivalent range error (m): 1-sigma error per HDOP"
    )
    uncertainty_k: float = Field(
        default=2.0, gt=0, description="fix uncertainty = k · HDOP · UERE (m)"
    )
    assumed_hdop: float = Field(
        default=3.0, gt=0, description="HDOP to assume when a fix does not report one"
    )
    max_hdop: float = Field(
        default=6.0, gt=0, description="fixes with a higher HDOP never start or end an alarm"
    )
    min_sats: int = Field(
        default=4, ge=0, description="fixes with fewer satellites never start or end an alarm"
    )
    # --- route corridor -------------------------------------------------------------
    corridor_factor: float = Field(
        default=1.0, gt=0, description="multiplies each route's corridor_m (half-width)"
    )
    deviation_persistence_s: float = Field(
        default=90.0, ge=0, description="outside corridor + uncertainty this long → ROUTE_DEVIATION"
    )
    deviation_clear_s: float = Field(
        default=60.0, ge=0, description="back inside the corridor this long → cleared"
    )
    # --- zones ------------------------------------------------------------------------
    zone_persistence_s: float = Field(
        default=15.0,
        ge=0,
        description="deeper than the fix uncertainty in a forbidden zone this long",
    )
    zone_clear_s: float = Field(
        default=30.0, ge=0, description="outside every forbidden zone this long → cleared"
    )
    # --- stops -----------------------------------------------------------------------
    max_stop_s: float = Field(
        default=900.0, gt=0, description="longest stop outside allowed stop zones and end sites"
    )
    stop_speed_kmh: float = Field(
        default=5.0, ge=0, description="a fix at or under this speed may begin a stop"
    )
    stop_radius_m: float = Field(
        default=120.0, gt=0, description="a stop ends when the truck moves this far (+ uncertainty)"
    )
    # --- speed -----------------------------------------------------------------------
    speed_limit_kmh: float = Field(
        default=100.0, gt=0, description="speed limit; a zone's max_speed_kmh lowers it there"
    )
    speed_tolerance_kmh: float = Field(
        default=5.0, ge=0, description="allowance over the limit before speed counts as over"
    )
    speed_persistence_s: float = Field(
        default=30.0, ge=0, description="over the limit this long → OVERSPEED"
    )
    speed_clear_s: float = Field(
        default=30.0, ge=0, description="under the limit this long → cleared"
    )
    speed_max_gap_s: float = Field(
        default=30.0, gt=0, description="a gap between fixes longer than this restarts the timers"
    )
    # --- plausibility ------------------------------------------------------------------
    implausible_speed_kmh: float = Field(
        default=250.0, gt=0, description="a jump implying more than this is implausible"
    )
    jump_allowance_m: float = Field(
        default=150.0, ge=0, description="jumps up to this (+ both fixes' uncertainty) always pass"
    )
    rebase_fixes: int = Field(
        default=10, ge=2, description="this many consistent rejected fixes become the new track"
    )
    # --- lock ----------------------------------------------------------------------------
    battery_floor_pct: float = Field(
        default=25.0, ge=0, le=100, description="battery under this → LOCK_LOW_BATTERY"
    )
    battery_clear_margin_pct: float = Field(
        default=5.0, ge=0, description="cleared when the battery is back over floor + margin"
    )
    wrong_password_count: int = Field(
        default=3, ge=1, description="this many wrong passwords within the window → alarm"
    )
    wrong_password_window_s: float = Field(
        default=600.0, gt=0, description="window for counting wrong passwords"
    )
    lock_site_margin_m: float = Field(
        default=30.0, ge=0, description="an unseal this close to the destination site is fine"
    )
    # --- GNSS and device -----------------------------------------------------------------
    gnss_loss_s: float = Field(
        default=180.0, gt=0, description="no valid fix this long → GNSS_LOST"
    )
    gnss_loss_tunnel_s: float = Field(
        default=900.0, gt=0, description="the same when the last fix was in or near a tunnel zone"
    )
    tunnel_approach_m: float = Field(
        default=300.0, ge=0, description="a last fix this close to a tunnel zone counts as in it"
    )
    silence_s: float = Field(
        default=300.0, gt=0, description="gateway silent this long during a trip → DEVICE_OFFLINE"
    )
    overdue_grace_s: float = Field(
        default=0.0, ge=0, description="grace after the declared time limit → TRANSIT_OVERDUE"
    )


def _profile(credit: CreditClass, **values: Any) -> CreditProfile:
    return CreditProfile(credit=credit, **values)


#: Built-in profiles: tighter for lower credit.
DEFAULT_PROFILES: Final[dict[CreditClass, CreditProfile]] = {
    "advanced": _profile(
        "advanced",
        corridor_factor=1.5,
        deviation_persistence_s=180.0,
        zone_persistence_s=30.0,
        max_stop_s=1800.0,
        speed_tolerance_kmh=10.0,
        speed_persistence_s=60.0,
        battery_floor_pct=20.0,
        wrong_password_count=5,
        gnss_loss_s=300.0,
        gnss_loss_tunnel_s=1800.0,
        silence_s=900.0,
        overdue_grace_s=600.0,
    ),
    "general_certified": _profile(
        "general_certified",
        corridor_factor=1.25,
        deviation_persistence_s=120.0,
        zone_persistence_s=20.0,
        max_stop_s=1200.0,
        speed_tolerance_kmh=10.0,
        speed_persistence_s=45.0,
        battery_floor_pct=20.0,
        wrong_password_count=3,
        gnss_loss_s=240.0,
        gnss_loss_tunnel_s=1200.0,
        silence_s=600.0,
        overdue_grace_s=300.0,
    ),
    "general": _profile("general"),
    "dishonest": _profile(
        "dishonest",
        corridor_factor=0.8,
        deviation_persistence_s=45.0,
        zone_persistence_s=5.0,
        max_stop_s=480.0,
        speed_tolerance_kmh=3.0,
        speed_persistence_s=20.0,
        battery_floor_pct=30.0,
        wrong_password_count=2,
        gnss_loss_s=120.0,
        gnss_loss_tunnel_s=600.0,
        silence_s=180.0,
    ),
}


class ProfileConfigError(ValueError):
    """A profiles file that cannot be used; `errors` lists every problem with its path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


def profiles_from_mapping(data: Any, source: str = "profiles") -> dict[CreditClass, CreditProfile]:
    """`{"profiles": {class: {field: value}}}` → all four profiles, defaults filled in."""
    if not isinstance(data, dict) or set(data) - {"profiles"}:
        raise ProfileConfigError([f"{source}: top level must be a mapping with only 'profiles'"])
    given = data.get("profiles") or {}
    if not isinstance(given, dict):
        raise ProfileConfigError([f"{source}: 'profiles' must map credit class → fields"])
    errors: list[str] = []
    result = dict(DEFAULT_PROFILES)
    for credit, fields in given.items():
        if credit not in CREDIT_CLASSES:
            errors.append(
                f"{source}: profiles.{credit}: unknown credit class; "
                f"use one of {list(CREDIT_CLASSES)}"
            )
            continue
        if not isinstance(fields, dict):
            errors.append(f"{source}: profiles.{credit}: must be a mapping of fields")
            continue
        merged = {**DEFAULT_PROFILES[credit].model_dump(), **fields, "credit": credit}
        try:
            result[credit] = CreditProfile.model_validate(merged)
        except ValidationError as err:
            _, lines = describe_validation_error(err)
            errors.extend(f"{source}: profiles.{credit}.{line}" for line in lines)
    if errors:
        raise ProfileConfigError(errors)
    return result


def configured_profiles(path: Path | str | None) -> dict[CreditClass, CreditProfile]:
    """The profiles of `geography.profiles`, or the built-in ones when none is set."""
    return load_profiles(path) if path else dict(DEFAULT_PROFILES)


def load_profiles(path: Path | str) -> dict[CreditClass, CreditProfile]:
    """Read a profiles YAML file (see `config/demo/profiles.yaml`)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ProfileConfigError([f"{p}: cannot read: {err}"]) from err
    return profiles_from_mapping(data, str(p))
