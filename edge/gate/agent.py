"""The gate agent: loop detector → cameras + OCR → passage → signed decision → barrier.

One lane per agent. A truck on the loop starts a reading (bursts from every camera,
the sharpest frames read by OCR on a worker thread, fused) that is published as a
`passage` through the durable outbox. The barrier opens only on a signed `open`
command, verified by `edge.commands`, for that very passage and lane; the decisions
themselves are `edge.gate.lane.step` (pure). The lane's traffic light follows the lane
(`lane.lamp_for`, enforced again by the barrier driver: green only at the fully-open
limit) and every change of the lane is published, retained, on the `lane` topic.
Health of barrier, cameras and OCR is published on change; availability is the link's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from typing import Any

from contract import topics
from contract.ids import format_ts, utc_now
from contract.payloads import GateCommand, HealthDevice, HealthStatus, SignedCommand
from devices.barrier.driver import BarrierDriver
from devices.camera import Camera
from devices.errors import DeviceError
from devices.ocr import GateReader, PassageReading
from edge.commands import ExecOutcome
from edge.gate import lane as L
from edge.gate.config import GateConfig
from edge.gate.readings import passage_containers, passage_plate
from edge.gate.upload_queue import UploadQueue
from edge.gate.uploader import EvidenceUploader
from edge.gate.vision import OcrWorker, PassageCapture, capture_passage
from edge.node import NodePlumbing
from edge.outbox import OutboxError

log = logging.getLogger(__name__)

#: How often the decision timeout, the link and the cameras are checked.
TICK_S = 0.2
#: Cameras get this long after start-up to deliver before "not connected" is reported.
CAMERA_GRACE_S = 10.0
NOT_CONNECTED = "stream not connected"


def new_passage_id(node_id: str, lane: str) -> str:
    """`P-{node}-{lane}-{UTC yyyymmddThhmmss}-{6 hex}`: unique without coordination."""
    stamp = utc_now().strftime("%Y%m%dT%H%M%S")
    return f"P-{node_id}-{lane}-{stamp}-{secrets.token_hex(3)}"


class GateAgent:
    def __init__(self, config: GateConfig, reader: GateReader | None = None) -> None:
        self.config = config
        node = config.node_id
        # pymodbus logs every unanswered request at ERROR; the driver logs the loss once.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self._ctx = f"gate {node} lane {config.lane}"
        plumbing = NodePlumbing.build(config, "gate", self._execute, self._ctx)
        self.outbox, self.commands, self.link = plumbing.outbox, plumbing.commands, plumbing.link
        self.health = plumbing.health
        self.barrier = BarrierDriver(config.barrier)
        self.cameras = [Camera(c) for c in config.cameras]
        self.ocr = OcrWorker(reader or GateReader(config.ocr))
        self.state = L.LaneState(lane=config.lane, decision_timeout_s=config.decision_timeout_s)
        self.signal: L.Signal = "idle"
        self._lane_reason: str | None = "gate agent started"
        self._lane_sent: L.LaneReport | None = None
        self.barrier.add_lamp_listener(self._on_lamp)
        self._group: asyncio.TaskGroup | None = None
        self._camera_status: dict[str, str] = {}
        self._started = time.monotonic()
        self.uploader: EvidenceUploader | None = None
        if config.evidence is not None:
            queue = UploadQueue(config.evidence.queue_path, config.evidence.max_items)
            self.uploader = EvidenceUploader(config.evidence, queue, self._ctx)

    # ---- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        self._started = time.monotonic()
        self._publish_lane()  # red at start-up: replaces whatever a previous run left
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self.link.run(), name="mqtt-link")
                for camera in self.cameras:
                    await camera.start()
                group.create_task(
                    self.barrier.run(self._on_presence, self._on_barrier_health), name="barrier"
                )
                group.create_task(self._warm_up(), name="ocr-warm-up")
                group.create_task(self._ticker(), name="lane-ticker")
                if self.uploader is not None:
                    group.create_task(self.uploader.run(), name="evidence-upload")
        finally:
            self._group = None
            for camera in self.cameras:
                await camera.stop()
            self.ocr.close()
            self.outbox.close()

    async def _warm_up(self) -> None:
        started = time.monotonic()
        try:
            await self.ocr.warm_up()
        except Exception as err:
            log.error("%s: OCR engine cannot start: %s", self._ctx, err)
            self._health("ocr", "down", f"OCR engine cannot start: {type(err).__name__}: {err}")
            return
        log.info("%s: OCR ready in %.1f s", self._ctx, time.monotonic() - started)
        self._health("ocr", "ok", "OCR engine loaded")

    async def _ticker(self) -> None:
        while True:
            self._apply(L.Tick(time.monotonic(), self.link.connected))
            self._watch_cameras()
            await asyncio.sleep(TICK_S)

    # ---- the lane state machine -------------------------------------------------------

    def _apply(self, event: L.Event) -> L.Step:
        """Feed one event; start the actions that run on their own."""
        before = self.state.phase
        result = L.step(self.state, event)
        self.state = result.state
        if result.state.phase != before:
            log.debug("%s: %s → %s on %s", self._ctx, before, result.state.phase, event)
            self._lane_reason = L.default_reason(result.state)
        for action in result.actions:
            if isinstance(action, L.ShowSignal):
                self._lane_reason = action.reason
        # The light first (red before the barrier is told to close), then the rest.
        self._show_lamp()
        for action in result.actions:
            if isinstance(action, L.StartReading):
                self._spawn(self._read(action.attempt), f"reading-{action.attempt}")
            elif isinstance(action, L.CloseBarrier):
                self._spawn(self._close(action.reason), "barrier-close")
            elif isinstance(action, L.ShowSignal):
                self._show(action)
            # OpenBarrier and Answer are carried out by the command executor.
        return result

    def _spawn(self, coro: Any, name: str) -> None:
        if self._group is None:
            coro.close()
            return
        self._group.create_task(coro, name=name)

    # ---- the lane's traffic light and its retained `lane` topic ----------------------

    def _show_lamp(self) -> None:
        """Ask the driver for the lane's colour, publish the lane, write the light."""
        before = self.barrier.lamp
        self.barrier.want_lamp(L.lamp_for(self.state))  # may call _on_lamp
        self._publish_lane()
        if self.barrier.lamp != before:
            self._spawn(self._sync_lamp(), "lamp")

    async def _sync_lamp(self) -> None:
        # A failure is retried, logged and put in health by the driver's polling.
        with contextlib.suppress(DeviceError):
            await self.barrier.sync_lamp()

    def _on_lamp(self, colour: str) -> None:
        """The colour to show changed (the driver logs the write itself)."""
        log.debug("%s: lane signal %s", self._ctx, colour)
        self._publish_lane()

    def _publish_lane(self) -> None:
        reason = self._lane_reason
        if self.barrier.lamp == "red" and L.lamp_for(self.state) == "green":
            reason = self.barrier.lamp_reason or reason
        report = L.lane_report(self.state, self.barrier.lamp, reason)
        if report == self._lane_sent:
            return
        payload: dict[str, Any] = {"ts": format_ts(utc_now()), **dataclasses.asdict(report)}
        try:
            self.outbox.enqueue(topics.lane(self.config.node_id), payload, retain=True)
        except OutboxError as err:
            log.error("%s: lane state not stored: %s", self._ctx, err)
            return
        self._lane_sent = report

    def _show(self, action: L.ShowSignal) -> None:
        self.signal = action.signal
        if action.signal == "hold":
            log.warning("%s: HOLD — barrier stays down: %s", self._ctx, action.reason)
        else:
            log.info("%s: %s — %s", self._ctx, action.signal, action.reason)

    async def _on_presence(self, occupied: bool) -> None:
        self._apply(L.Presence(occupied))

    async def _close(self, reason: str) -> None:
        log.info("%s: closing the barrier: %s", self._ctx, reason)
        result = await self.barrier.close_barrier()
        if not result.ok:
            log.error("%s: barrier did not close: %s", self._ctx, result.reason)
        self._apply(L.BarrierClosed(result.ok, result.reason))

    # ---- a truck: read and publish -----------------------------------------------------

    async def _read(self, attempt: int) -> None:
        cfg = self.config
        passage_id = new_passage_id(cfg.node_id, cfg.lane)
        log.info("%s: truck on the loop, reading passage %s", self._ctx, passage_id)
        started = time.monotonic()
        ts = utc_now()
        try:
            capture = await capture_passage(
                self.cameras,
                self.ocr,
                node_id=cfg.node_id,
                passage_id=passage_id,
                images_dir=cfg.images_dir,
                day=ts.strftime("%Y-%m-%d"),
                frames_per_camera=cfg.frames_per_camera,
                max_frame_age_s=cfg.max_frame_age_s,
                ocr_timeout_s=cfg.ocr_timeout_s,
            )
        except Exception as err:  # never leave a truck without a passage
            log.exception("%s: reading passage %s failed", self._ctx, passage_id)
            capture = PassageCapture(reading=PassageReading(), ocr_problem=f"reading failed: {err}")
        self._report_reading(capture)
        payload: dict[str, Any] = {
            "ts": format_ts(ts),
            "passage_id": passage_id,
            "lane": cfg.lane,
            "direction": cfg.direction,
            "containers": [
                c.model_dump(mode="json", exclude_none=True)
                for c in passage_containers(capture.reading)
            ],
            "plate": _plate(capture),
            "images": capture.images,
        }
        try:
            self.outbox.enqueue(topics.passage(cfg.node_id), payload)
        except OutboxError as err:
            log.error("%s: passage %s not stored: %s", self._ctx, passage_id, err)
            self._apply(L.PassageFailed(attempt, str(err)))
            return
        log.info(
            "%s: passage %s published in %.1f s: containers %s, plate %s, %d images",
            self._ctx,
            passage_id,
            time.monotonic() - started,
            [c["number"] for c in payload["containers"]] or "none read",
            payload["plate"]["text"] if payload["plate"] else "none read",
            len(capture.images),
        )
        self._apply(L.PassageSent(attempt, passage_id, time.monotonic()))
        if self.uploader is not None:  # after the passage: the lane never waits for images
            self._spawn(self.uploader.enqueue(passage_id, capture.evidence), "evidence-queue")

    def _report_reading(self, capture: PassageCapture) -> None:
        for name in capture.cameras_ok:
            self._camera_status[name] = "ok"
        for name, why in capture.camera_problems.items():
            self._camera_status[name] = why
        self._camera_health()
        if capture.ocr_problem is not None:
            status: HealthStatus = "down" if capture.frames_read == 0 else "degraded"
            self._health("ocr", status, capture.ocr_problem)
        elif capture.frames_read:
            self._health("ocr", "ok", f"{capture.frames_read} frames read")

    def _watch_cameras(self) -> None:
        """A camera's stream lost (or never opened after a grace period) is news."""
        if time.monotonic() - self._started < CAMERA_GRACE_S:
            return
        changed = False
        for camera in self.cameras:
            name = camera.config.name
            status = self._camera_status.get(name)
            if not camera.connected and status != NOT_CONNECTED:
                self._camera_status[name] = NOT_CONNECTED
                changed = True
            elif camera.connected and status in (None, NOT_CONNECTED):
                self._camera_status[name] = "ok"
                changed = True
        if changed:
            self._camera_health()

    def _camera_health(self) -> None:
        names = [c.config.name for c in self.cameras]
        if not all(n in self._camera_status for n in names):
            return
        bad = {n: s for n, s in self._camera_status.items() if s != "ok"}
        if not bad:
            self._health("camera", "ok", f"{len(names)} camera(s) delivering frames")
            return
        status: HealthStatus = "down" if len(bad) == len(names) else "degraded"
        self._health("camera", status, "; ".join(f"{n}: {s}" for n, s in sorted(bad.items())))

    # ---- verified commands → lane ------------------------------------------------------

    async def _execute(self, command: SignedCommand) -> tuple[ExecOutcome, str]:
        assert isinstance(command, GateCommand)
        event = L.Command(
            command.command_id,
            command.passage_id,
            command.lane,
            command.action,
            tuple(command.reasons),
        )
        result = self._apply(event)
        opening = next((a for a in result.actions if isinstance(a, L.OpenBarrier)), None)
        if opening is None:
            answer = result.answer() or L.Answer("refused", "no action for this command")
            self._log_answer(command, answer)
            return answer.result, answer.detail
        log.info(
            "%s: opening the barrier for passage %s (command %s)",
            self._ctx,
            opening.passage_id,
            command.command_id,
        )
        try:
            outcome = await self.barrier.open_barrier()
        except BaseException as err:  # the driver commanded close; the lane must not stay opening
            self._apply(L.BarrierOpened(False, f"{type(err).__name__}: {err}"))
            raise
        after = self._apply(L.BarrierOpened(outcome.ok, outcome.reason))
        answer = after.answer() or L.Answer(
            "done" if outcome.ok else "failed", outcome.reason or "barrier open"
        )
        self._log_answer(command, answer)
        return answer.result, answer.detail

    def _log_answer(self, command: GateCommand, answer: L.Answer) -> None:
        say = log.info if answer.result == "done" else log.warning
        say(
            "%s: command %s (%s passage %s): %s — %s",
            self._ctx,
            command.command_id,
            command.action,
            command.passage_id,
            answer.result,
            answer.detail,
        )

    # ---- health -------------------------------------------------------------------------

    async def _on_barrier_health(self, status: HealthStatus, detail: str) -> None:
        self._health("barrier", status, detail)

    def _health(self, device: HealthDevice, status: HealthStatus, detail: str) -> None:
        """Publish a change (the same status again is not news); a lost device logs once."""
        self.health.report(device, status, detail)


def _plate(capture: PassageCapture) -> dict[str, Any] | None:
    plate = passage_plate(capture.reading)
    return plate.model_dump(mode="json") if plate is not None else None
