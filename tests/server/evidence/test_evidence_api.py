"""Passage images over REST: a gate's device account uploads the images of its own
passages; the server checks type, size and ownership before it stores anything, and
serves them to signed-in accounts only."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from starlette.websockets import WebSocketDisconnect

from contract.evidence import ImageMeta, TextBox
from contract.ids import utc_now
from server.app import create_app
from server.evidence.config import EvidenceSettings, FolderStorageSettings, S3StorageSettings
from server.evidence.service import EvidenceService
from server.store import schema
from tests.server.auth.session import add_account, login
from tests.server.gates.conftest import GateWorld, gate_world_in
from tests.server.gates.test_service import pass_gate

GATE = "G-BAIYUN-1"
OTHER_GATE = "G-HUANGPU-1"
MAX_BYTES = 64 * 1024


def jpeg(
    width: int = 320, height: int = 180, colour: tuple[int, int, int] = (40, 90, 160)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=85)
    return out.getvalue()


def frame_meta(**over: Any) -> str:
    meta = ImageMeta(
        kind="frame",
        camera="door",
        texts=[
            TextBox(kind="container", text="CSQU3054383", confidence=0.97, needs_review=False,
                    box=(20, 30, 200, 60)),
            TextBox(kind="plate", text="粤A·D3K21", confidence=0.62, needs_review=True,
                    box=(100, 120, 180, 150)),
        ],
    )  # fmt: skip
    data = meta.model_dump(mode="json") | over
    return json.dumps(data)


@dataclass
class Rig:
    client: TestClient
    world: GateWorld
    folder: Path
    tokens: dict[str, str]
    bucket: Any = None  # boto3's Bucket when the storage is S3

    def put(self, passage_id: str, n: int, body: bytes, meta: str | None = None,
            gate: str = GATE, content_type: str = "image/jpeg") -> Any:  # fmt: skip
        headers = {"Authorization": f"Bearer {self.tokens[gate]}", "Content-Type": content_type}
        if meta is not None:
            headers["X-Image-Meta"] = meta
        return self.client.put(f"/api/v1/passages/{passage_id}/images/{n}", content=body,
                               headers=headers)  # fmt: skip

    def stored(self) -> tuple[int, list[str]]:
        """Rows of images, and the stored objects (files or S3 keys)."""
        with self.world.services.store.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(schema.passage_images)).scalar()
        if self.bucket is not None:
            return int(rows or 0), sorted(o.key for o in self.bucket.objects.all())
        files = sorted(str(p) for p in self.folder.rglob("*") if p.is_file())
        return int(rows or 0), files


def storage(kind: str, folder: Path, s3: str | None, monkeypatch: pytest.MonkeyPatch,
            name: str) -> tuple[EvidenceSettings, Any]:  # fmt: skip
    """Evidence settings on a folder, or on a fresh bucket of the S3 endpoint."""
    if kind == "folder":
        storage = FolderStorageSettings(path=folder)
        return EvidenceSettings(storage=storage, max_bytes=MAX_BYTES), None
    assert s3 is not None
    monkeypatch.setenv("BONDWATCH_S3_ACCESS_KEY_ID", "testing-key")
    monkeypatch.setenv("BONDWATCH_S3_SECRET_ACCESS_KEY", "testing-secret")
    bucket = boto3.resource("s3", endpoint_url=s3, region_name="us-east-1",
                            aws_access_key_id="testing-key",
                            aws_secret_access_key="testing-secret").Bucket(name)  # fmt: skip
    bucket.create()
    settings = S3StorageSettings(type="s3", endpoint_url=s3, bucket=name, prefix="bw/")
    return EvidenceSettings(storage=settings, max_bytes=MAX_BYTES), bucket


@pytest.fixture(params=["folder", "s3"])
def rig(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Rig]:
    folder = tmp_path / "evidence"
    s3 = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    bucket_name = f"evidence-{tmp_path.name.lower().replace('_', '-')[-40:]}".rstrip("-")
    settings, bucket = storage(request.param, folder, s3, monkeypatch, bucket_name)
    gate_world = gate_world_in(tmp_path, evidence=settings)
    try:
        yield from _rig(gate_world, folder, bucket)
    finally:
        gate_world.services.store.close()


def _rig(gate_world: GateWorld, folder: Path, bucket: Any) -> Iterator[Rig]:
    """Accounts for an admin, an officer and each gate (a device account with an API
    token), and a passage at each gate."""
    app = create_app(gate_world.services)
    svc = gate_world.services
    add_account(svc, "admin", "admin")
    add_account(svc, "officer", "officer")
    tokens = {}
    with TestClient(app) as admin:
        login(admin, "admin")
        for gate in (GATE, OTHER_GATE):
            res = admin.post("/api/v1/users", json={"username": gate, "display_name": gate,
                                                     "role": "device"})  # fmt: skip
            assert res.status_code == 201, res.text
            res = admin.post(f"/api/v1/users/{gate}/tokens", json={"name": "evidence upload"})
            assert res.status_code == 201, res.text
            tokens[gate] = res.json()["token"]
    pass_gate(gate_world, GATE, "P-EV-1", ago_min=1)
    pass_gate(gate_world, OTHER_GATE, "P-EV-OTHER", ago_min=1)
    with TestClient(app) as client:
        yield Rig(client, gate_world, folder, tokens, bucket)


def officer(rig: Rig) -> TestClient:
    client = TestClient(rig.client.app)
    login(client, "officer")
    return client


def test_a_gate_uploads_its_frame_and_officers_see_it_with_its_readings(rig: Rig) -> None:
    body = jpeg()
    res = rig.put("P-EV-1", 0, body, frame_meta())
    assert res.status_code == 201, res.text
    out = res.json()
    assert (out["n"], out["kind"], out["camera"], out["width"], out["height"]) == (
        0, "frame", "door", 320, 180)  # fmt: skip
    assert out["url"] == "/api/v1/passages/P-EV-1/images/0"
    assert [t["text"] for t in out["texts"]] == ["CSQU3054383", "粤A·D3K21"]
    crop_meta = json.dumps({"kind": "crop", "camera": "door", "frame": 0, "texts": [
        {"kind": "container", "text": "CSQU3054383", "confidence": 0.97,
         "needs_review": False, "box": [0, 0, 180, 30]}]})  # fmt: skip
    crop = jpeg(180, 30, (200, 200, 200))
    assert rig.put("P-EV-1", 1, crop, crop_meta).status_code == 201
    # The same upload again (a gate that crashed before forgetting it): stored once.
    again = rig.put("P-EV-1", 0, body, frame_meta())
    assert again.status_code == 200 and again.json()["sha256"] == out["sha256"]
    assert rig.stored()[0] == 2 and len(rig.stored()[1]) == 2

    viewer = officer(rig)
    listed = viewer.get("/api/v1/passages/P-EV-1/images").json()
    assert [(i["n"], i["kind"], i["frame"]) for i in listed] == [(0, "frame", None), (1, "crop", 0)]
    assert listed[0]["texts"][1]["confidence"] == 0.62
    image = viewer.get("/api/v1/passages/P-EV-1/images/0")
    assert image.status_code == 200 and image.content == body
    assert image.headers["content-type"] == "image/jpeg"
    assert image.headers["cache-control"].startswith("private")
    # The passage itself carries them (`evidence`), and so does its trip's timeline.
    passage = viewer.get("/api/v1/passages/P-EV-1").json()
    assert [e["n"] for e in passage["evidence"]] == [0, 1]
    assert passage["images"] == ["gate://P-EV-1/front.jpg"]  # the gate's own, unchanged
    listed_passages = viewer.get("/api/v1/passages").json()
    by_id = {p["passage_id"]: p for p in listed_passages}
    assert len(by_id["P-EV-1"]["evidence"]) == 2 and by_id["P-EV-OTHER"]["evidence"] == []


def test_no_session_no_image(rig: Rig) -> None:
    assert rig.put("P-EV-1", 0, jpeg(), frame_meta()).status_code == 201
    anonymous = TestClient(rig.client.app)
    for path in ("/api/v1/passages/P-EV-1/images", "/api/v1/passages/P-EV-1/images/0"):
        res = anonymous.get(path)
        assert res.status_code == 401, path
        assert res.json()["error"]["code"] == "unauthenticated"
        assert res.headers["content-type"].startswith("application/json")
    # A gate's token uploads; it reads nothing, not even its own images.
    device = {"Authorization": f"Bearer {rig.tokens[GATE]}"}
    for path in ("/api/v1/passages/P-EV-1/images/0", "/api/v1/passages", "/api/v1/trips",
                 "/api/v1/auth/me", "/metrics", "/api/v1/console/config"):  # fmt: skip
        res = anonymous.get(path, headers=device)
        assert res.status_code == 403, (path, res.text)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/jpeg", 415, "not_jpeg"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 200 + b"\xff\xd9", "image/jpeg", 415, "not_jpeg"),
        (jpeg()[:-200], "image/jpeg", 415, "not_jpeg"),
        (jpeg(), "image/png", 415, "not_jpeg"),
        (jpeg(2000, 2000, (1, 2, 3)) + b"\x00" * MAX_BYTES, "image/jpeg", 413, "too_large"),
    ],
    ids=["png", "jpeg-magic-garbage", "truncated", "wrong-content-type", "oversized"],
)
def test_a_bad_upload_is_refused_and_stores_nothing(
    rig: Rig, body: bytes, content_type: str, status: int, code: str
) -> None:
    res = rig.put("P-EV-1", 0, body, frame_meta(), content_type=content_type)
    assert res.status_code == status, res.text
    assert res.json()["error"]["code"] == code
    assert rig.stored() == (0, [])


def test_an_oversized_body_is_refused_without_a_content_length(rig: Rig) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BYTES // 1024 + 8):
            yield b"\xff" * 1024

    headers = {"Authorization": f"Bearer {rig.tokens[GATE]}", "Content-Type": "image/jpeg",
               "X-Image-Meta": frame_meta()}  # fmt: skip
    res = rig.client.put("/api/v1/passages/P-EV-1/images/0", content=chunks(), headers=headers)
    assert res.status_code == 413 and rig.stored() == (0, [])


def test_a_gate_cannot_upload_for_another_gates_passage(rig: Rig) -> None:
    res = rig.put("P-EV-OTHER", 0, jpeg(), frame_meta(), gate=GATE)
    assert res.status_code == 403, res.text
    assert OTHER_GATE in res.json()["error"]["message"]
    assert rig.stored() == (0, [])
    # Nor may a person's account upload at all.
    headers = {"Content-Type": "image/jpeg", "X-Image-Meta": frame_meta()}
    res = officer(rig).put("/api/v1/passages/P-EV-1/images/0", content=jpeg(), headers=headers)
    assert res.status_code == 403 and rig.stored() == (0, [])


def test_bad_numbers_meta_and_passages_are_refused(rig: Rig) -> None:
    assert rig.put("P-EV-1", 64, jpeg(), frame_meta()).status_code == 422
    assert rig.put("P-EV-1", -1, jpeg(), frame_meta()).status_code == 422
    assert rig.put("P-NOPE", 0, jpeg(), frame_meta()).status_code == 404
    assert rig.put("P-EV-1", 0, jpeg(), None).status_code == 422
    assert rig.put("P-EV-1", 0, jpeg(), "{not json").status_code == 422
    crop_without_frame = frame_meta(kind="crop")
    assert rig.put("P-EV-1", 0, jpeg(), crop_without_frame).status_code == 422
    outside = frame_meta(texts=[{"kind": "plate", "text": "粤A1", "confidence": 0.5,
                                 "needs_review": True, "box": [10, 10, 400, 50]}])  # fmt: skip
    res = rig.put("P-EV-1", 0, jpeg(), outside)
    assert res.status_code == 422 and "outside" in res.json()["error"]["message"]
    assert rig.stored() == (0, [])


def test_evidence_is_never_replaced(rig: Rig) -> None:
    first = jpeg()
    assert rig.put("P-EV-1", 0, first, frame_meta()).status_code == 201
    res = rig.put("P-EV-1", 0, jpeg(colour=(255, 0, 0)), frame_meta())
    assert res.status_code == 409
    assert officer(rig).get("/api/v1/passages/P-EV-1/images/0").content == first
    assert rig.stored()[0] == 1 and len(rig.stored()[1]) == 1


def test_images_expire_after_the_retention_period(rig: Rig) -> None:
    evidence: EvidenceService = rig.world.services.evidence
    assert rig.put("P-EV-1", 0, jpeg(), frame_meta()).status_code == 201
    assert evidence.sweep() == 0 and rig.stored()[0] == 1
    later = utc_now() + timedelta(days=evidence.settings.retention_days, minutes=1)
    assert evidence.sweep(later) == 1
    assert rig.stored() == (0, [])
    assert officer(rig).get("/api/v1/passages/P-EV-1/images/0").status_code == 404


def test_a_device_token_opens_no_stream(rig: Rig) -> None:
    url = f"/api/v1/stream?token={rig.tokens[GATE]}"
    with (
        rig.client.websocket_connect(url) as ws,
        pytest.raises(WebSocketDisconnect) as refused,
    ):
        ws.receive_text()
    assert refused.value.code == 1008
    assert "device" in refused.value.reason


def test_storage_settings_pick_their_kind_by_type() -> None:
    assert EvidenceSettings.model_validate({"storage": {"path": "x"}}).storage == (
        FolderStorageSettings(path=Path("x"))
    )
    s3 = EvidenceSettings.model_validate({"storage": {"type": "s3", "bucket": "bw-evidence"}})
    assert isinstance(s3.storage, S3StorageSettings) and s3.storage.prefix == "evidence/"
    with pytest.raises(ValueError, match="'folder', 's3'"):
        EvidenceSettings.model_validate({"storage": {"type": "ftp"}})
