"""Messages as JSON-ready dicts: the output of `python -m devices.elock decode`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devices.elock.bodies import (
    ALARM_BITS,
    STATUS_BITS,
    Authentication,
    BatchLocation,
    Body,
    Heartbeat,
    Location,
    PlatformResponse,
    RawBody,
    Registration,
    RegistrationResponse,
    TerminalResponse,
    Transparent,
    flag_names,
)
from devices.elock.codec import Message
from devices.errors import FrameError


def rfc3339(moment: datetime | None) -> str | None:
    """UTC with milliseconds and a `Z`, as docs/contract.md asks."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def location_json(loc: Location) -> dict[str, Any]:
    out: dict[str, Any] = {
        "alarm": loc.alarm,
        "alarm_flags": flag_names(loc.alarm, ALARM_BITS),
        "status": loc.status,
        "status_flags": flag_names(loc.status, STATUS_BITS),
        "lat": loc.lat,
        "lon": loc.lon,
        "alt_m": loc.alt_m,
        "speed_kmh": loc.speed_kmh,
        "course_deg": loc.course_deg,
        "time": rfc3339(loc.time),
        "extras": [item.to_json() for item in loc.extras],
    }
    if loc.time is None:
        out["time_bcd"] = loc.time_bcd.hex()
    if loc.trailing:
        out["extras_trailing"] = loc.trailing.hex()
    return out


def body_json(body: Body) -> dict[str, Any]:
    if isinstance(body, Location):
        return location_json(body)
    if isinstance(body, BatchLocation):
        return {"kind": body.kind, "items": [location_json(item) for item in body.items]}
    if isinstance(body, TerminalResponse | PlatformResponse):
        return {"reply_serial": body.reply_serial, "reply_id": body.reply_id, "result": body.result}
    if isinstance(body, Heartbeat):
        return {}
    if isinstance(body, Registration):
        return {
            "province": body.province,
            "city": body.city,
            "manufacturer": body.manufacturer,
            "model": body.model,
            "terminal_id": body.terminal_id,
            "plate_colour": body.plate_colour,
            "plate": body.plate,
            "form": body.form,
        }
    if isinstance(body, RegistrationResponse):
        return {
            "reply_serial": body.reply_serial,
            "result": body.result,
            "auth_code": body.auth_code,
        }
    if isinstance(body, Authentication):
        out: dict[str, Any] = {"auth_code": body.auth_code}
        if body.imei or body.software_version:
            out["imei"] = body.imei
            out["software_version"] = body.software_version
        return out
    if isinstance(body, Transparent):
        result: dict[str, Any] = {"type": body.kind, "data": body.data.hex()}
        try:
            block = body.bondwatch
        except FrameError as err:
            result["bondwatch_error"] = str(err)
        else:
            if block is not None:
                result["bondwatch"] = block.to_json()
        return result
    if isinstance(body, RawBody):
        return {"body": body.data.hex(), "undecoded": body.why}
    raise TypeError(f"no JSON form for {type(body).__name__}")


def message_json(message: Message) -> dict[str, Any]:
    header = message.header
    out: dict[str, Any] = {
        "msg_id": header.msg_id,
        "phone": header.phone,
        "serial": header.serial,
        "checksum_ok": message.checksum_ok,
        "version": header.version,
    }
    if header.encryption:
        out["encryption"] = header.encryption
    if header.is_subpackage:
        out["packet_total"] = header.packet_total
        out["packet_index"] = header.packet_index
    out.update(body_json(message.body))
    return out
