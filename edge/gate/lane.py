"""The lane state machine: presence, passages, decisions and timeouts → actions (pure).

`step(state, event)` returns the next state and the actions the agent must carry out;
it does no I/O and reads no clock (times come in the events). The barrier is opened
only by a verified `open` command whose `passage_id` and `lane` are the lane's current
passage (`OpenBarrier` has no other source). Everything else — no decision in time, a
lost broker, a failed reading, a failed open — leaves the barrier down and the lane
showing hold.

Phases:

| phase | meaning |
|---|---|
| `empty` | no truck on the loop, barrier down |
| `reading` | a truck arrived: cameras and OCR at work (attempt `attempt`) |
| `awaiting` | the passage is published; the decision is due by `deadline` |
| `held` | barrier down, truck in the lane: hold, timeout or failure (an override `open` |
|  | for the same passage still opens) |
| `opening` | a verified `open` is being carried out |
| `open` | barrier open, truck still on the loop |
| `closing` | the truck left; the barrier is closing |

The lane's traffic light follows the phase (`lamp_for`): green in `open` only, red in
every other phase — before a decision, on hold, while the arm moves, and at start-up.
`lane_report` is what the gate publishes on its retained `lane` topic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from contract.payloads import LanePhase

Phase = Literal["empty", "reading", "awaiting", "held", "opening", "open", "closing"]
Signal = Literal["idle", "wait", "hold", "go"]
Lamp = Literal["red", "green"]
#: The contract's name of each phase (`LaneStatus.state` on the `lane` topic).
REPORTED_STATE: dict[Phase, LanePhase] = {
    "empty": "idle",
    "reading": "reading",
    "awaiting": "waiting",
    "held": "hold",
    "opening": "opening",
    "open": "open",
    "closing": "closing",
}


# ---- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Presence:
    """The loop detector's debounced presence changed."""

    occupied: bool


@dataclass(frozen=True, slots=True)
class PassageSent:
    """Reading `attempt` was published as passage `passage_id` at monotonic time `now`."""

    attempt: int
    passage_id: str
    now: float


@dataclass(frozen=True, slots=True)
class PassageFailed:
    """Reading `attempt` could not be published (the outbox refused it)."""

    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class Command:
    """A signed gate command that `edge.commands` verified (signature, addressee, expiry,
    nonce)."""

    command_id: str
    passage_id: str
    lane: str
    action: Literal["open", "hold"]
    reasons: tuple[str, ...] = ()
    """The server's reasons (shown with a hold)."""


@dataclass(frozen=True, slots=True)
class BarrierOpened:
    """The outcome of `OpenBarrier`."""

    ok: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BarrierClosed:
    """The outcome of `CloseBarrier`."""

    ok: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Monotonic time now, and whether the MQTT link is connected."""

    now: float
    connected: bool = True


Event = Presence | PassageSent | PassageFailed | Command | BarrierOpened | BarrierClosed | Tick


# ---- actions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartReading:
    """Capture bursts, read them and publish a passage; answer with `PassageSent`."""

    attempt: int


@dataclass(frozen=True, slots=True)
class OpenBarrier:
    """Open the barrier for `passage_id`; answer with `BarrierOpened`."""

    passage_id: str


@dataclass(frozen=True, slots=True)
class CloseBarrier:
    """Close the barrier; answer with `BarrierClosed`."""

    reason: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The result of a command: `done` or `refused`, with the reason."""

    result: Literal["done", "refused", "failed"]
    detail: str


@dataclass(frozen=True, slots=True)
class ShowSignal:
    """What the lane shows the driver (and the log): idle, wait, hold or go."""

    signal: Signal
    reason: str


Action = StartReading | OpenBarrier | CloseBarrier | Answer | ShowSignal


# ---- state --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaneState:
    lane: str
    decision_timeout_s: float
    phase: Phase = "empty"
    occupied: bool = False
    attempt: int = 0
    passage_id: str | None = None
    deadline: float | None = None
    hold_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    state: LaneState
    actions: tuple[Action, ...] = ()

    def answer(self) -> Answer | None:
        """The `Answer` among the actions, if any."""
        for action in self.actions:
            if isinstance(action, Answer):
                return action
        return None


def _hold(state: LaneState, reason: str, *extra: Action) -> Step:
    held = replace(state, phase="held", deadline=None, hold_reason=reason)
    return Step(held, (*extra, ShowSignal("hold", reason)))


def _start_reading(state: LaneState) -> Step:
    attempt = state.attempt + 1
    nxt = replace(
        state,
        phase="reading",
        occupied=True,
        attempt=attempt,
        passage_id=None,
        deadline=None,
        hold_reason=None,
    )
    return Step(nxt, (StartReading(attempt), ShowSignal("wait", "truck in lane: reading")))


def _empty(state: LaneState, reason: str) -> Step:
    nxt = replace(
        state, phase="empty", occupied=False, passage_id=None, deadline=None, hold_reason=None
    )
    return Step(nxt, (ShowSignal("idle", reason),))


def step(state: LaneState, event: Event) -> Step:
    """The next state and the actions for one event."""
    if isinstance(event, Presence):
        return _presence(state, event.occupied)
    if isinstance(event, PassageSent):
        if state.phase != "reading" or event.attempt != state.attempt:
            return Step(state)  # a truck that left before its reading finished
        nxt = replace(
            state,
            phase="awaiting",
            passage_id=event.passage_id,
            deadline=event.now + state.decision_timeout_s,
        )
        return Step(nxt)
    if isinstance(event, PassageFailed):
        if state.phase != "reading" or event.attempt != state.attempt:
            return Step(state)
        return _hold(state, f"passage not published: {event.reason}")
    if isinstance(event, Command):
        return _command(state, event)
    if isinstance(event, BarrierOpened):
        return _opened(state, event)
    if isinstance(event, BarrierClosed):
        return _closed(state, event)
    return _tick(state, event)


def _presence(state: LaneState, occupied: bool) -> Step:
    if occupied == state.occupied:
        return Step(state)
    if occupied:
        if state.phase == "empty":
            return _start_reading(state)
        # Closing behind the previous truck (or still opening): read once it is down.
        return Step(replace(state, occupied=True))
    # The truck left the loop.
    if state.phase == "open":
        nxt = replace(state, phase="closing", occupied=False, deadline=None)
        return Step(nxt, (CloseBarrier("truck left the loop"),))
    if state.phase in ("opening", "closing"):
        return Step(replace(state, occupied=False))
    # reading / awaiting / held: the truck backed out; the barrier never opened.
    return _empty(state, "truck left the lane without passing")


def _command(state: LaneState, cmd: Command) -> Step:
    if cmd.lane != state.lane:
        return Step(
            state,
            (
                Answer(
                    "refused", f"command for lane {cmd.lane}, this controller is lane {state.lane}"
                ),
            ),
        )
    current = state.passage_id
    if current is None or state.phase in ("empty", "reading", "closing"):
        why = {
            "empty": "no truck is in the lane",
            "reading": "the lane's current passage is still being read",
            "closing": "the truck has left and the barrier is closing",
        }.get(state.phase, "no passage awaits a decision")
        return Step(
            state,
            (
                Answer(
                    "refused",
                    f"passage {cmd.passage_id} is not current in lane {state.lane}: {why}",
                ),
            ),
        )
    if cmd.passage_id != current:
        return Step(
            state,
            (
                Answer(
                    "refused",
                    f"passage {cmd.passage_id} is not the current passage {current} "
                    f"of lane {state.lane}",
                ),
            ),
        )
    if cmd.action == "hold":
        if state.phase in ("opening", "open"):
            return Step(
                state,
                (
                    Answer(
                        "refused",
                        f"barrier already {state.phase} for passage {current}; it closes "
                        "when the truck has left the loop",
                    ),
                ),
            )
        why = "server decided hold"
        if cmd.reasons:
            why += ": " + "; ".join(cmd.reasons)
        return _hold(state, why[:1000], Answer("done", "barrier kept down: hold"))
    # open
    if state.phase == "opening":
        return Step(state, (Answer("refused", f"barrier already opening for passage {current}"),))
    if state.phase == "open":
        return Step(state, (Answer("done", f"barrier already open for passage {current}"),))
    nxt = replace(state, phase="opening", deadline=None, hold_reason=None)
    return Step(nxt, (OpenBarrier(current),))


def _opened(state: LaneState, result: BarrierOpened) -> Step:
    if state.phase != "opening":
        return Step(state)
    if not result.ok:
        reason = f"barrier did not open: {result.reason}"
        return _hold(state, reason, Answer("failed", reason))
    if not state.occupied:
        nxt = replace(state, phase="closing")
        return Step(
            nxt,
            (
                Answer("done", "barrier opened; the truck had already left, closing"),
                CloseBarrier("truck left the loop while the barrier opened"),
            ),
        )
    nxt = replace(state, phase="open")
    return Step(
        nxt,
        (
            Answer("done", f"barrier open for passage {state.passage_id}"),
            ShowSignal("go", f"passage {state.passage_id} released"),
        ),
    )


def _closed(state: LaneState, result: BarrierClosed) -> Step:
    if state.phase != "closing":
        return Step(state)
    after = _empty(
        state, "barrier closed" if result.ok else f"barrier may not be closed: {result.reason}"
    )
    if state.occupied:
        # The next truck drove on while the barrier was closing.
        first = after.actions
        nxt = _start_reading(replace(after.state, occupied=False))
        return Step(nxt.state, first + nxt.actions)
    return after


def _tick(state: LaneState, tick: Tick) -> Step:
    if state.phase != "awaiting":
        return Step(state)
    if not tick.connected:
        return _hold(state, "no connection to the broker: no decision can arrive")
    if state.deadline is not None and tick.now >= state.deadline:
        return _hold(
            state, f"no decision within {state.decision_timeout_s:g} s for {state.passage_id}"
        )
    return Step(state)


# ---- what the lane shows ------------------------------------------------------------


def lamp_for(state: LaneState) -> Lamp:
    """The traffic light the lane asks for: green only while the barrier is open for a
    verified `open` and the truck is still on the loop; red in every other phase."""
    return "green" if state.phase == "open" else "red"


def default_reason(state: LaneState) -> str | None:
    """Why the lane is in its phase, when no `ShowSignal` said it."""
    pid = state.passage_id
    return {
        "empty": None,
        "reading": "truck in lane: reading",
        "awaiting": f"passage {pid} published: decision due within {state.decision_timeout_s:g} s",
        "held": state.hold_reason,
        "opening": f"verified open for passage {pid}: barrier opening",
        "open": f"passage {pid} released",
        "closing": "truck left the loop: barrier closing",
    }[state.phase]


@dataclass(frozen=True, slots=True)
class LaneReport:
    """The `lane` topic's payload fields (besides node_id, seq, ts)."""

    lane: str
    state: LanePhase
    passage_id: str | None
    signal: Lamp
    reason: str | None


def lane_report(state: LaneState, signal: Lamp, reason: str | None) -> LaneReport:
    """The report of `state` with the light actually commanded (the barrier driver may
    keep it red although the lane asks for green)."""
    return LaneReport(
        lane=state.lane,
        state=REPORTED_STATE[state.phase],
        passage_id=state.passage_id,
        signal=signal if state.phase == "open" else "red",
        reason=reason,
    )
