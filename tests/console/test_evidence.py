"""A passage's images on the console: uploaded by the gate's device account over REST while
the page is open, they appear by themselves on the gate lanes page and on the trip
timeline as thumbnails with the text boxes and confidences; a click opens the full frame.
(The whole chain from a real gate agent is tests/hil/test_gate_evidence.py.)"""

from __future__ import annotations

import io
from datetime import timedelta

import httpx
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from contract.evidence import ImageMeta, TextBox
from contract.ids import utc_now
from server.auth.accounts import AccountStore
from server.auth.config import AuthSettings
from tests.console.conftest import ACCOUNTS, Console, ConsoleServer
from tests.server.conftest import declaration

TRIP, VEHICLE, GATE = "D-EV-1", "TRK-EV1", "G-HUANGPU-1"
NUMBER = "EVDU1000019"


def door(width: int = 640, height: int = 360) -> bytes:
    image = Image.new("RGB", (width, height), (30, 110, 60))
    ImageDraw.Draw(image).rectangle((100, 80, 420, 130), outline=(255, 255, 255), width=3)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def device_token(server: ConsoleServer) -> str:
    accounts = AccountStore(server.services.store.engine, AuthSettings())
    if accounts.get(GATE) is None:
        accounts.create("test", GATE, GATE, "device", None, utc_now())
    token, _ = accounts.issue_token("test", GATE, "evidence", None, utc_now())
    return token


def upload(server: ConsoleServer, token: str, passage_id: str, n: int, meta: ImageMeta,
           body: bytes) -> None:  # fmt: skip
    res = httpx.put(
        f"{server.base_url}/api/v1/passages/{passage_id}/images/{n}",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "image/jpeg",
            "X-Image-Meta": meta.header(),
        },
    )
    assert res.status_code == 201, res.text


def test_uploaded_images_appear_on_the_lanes_and_the_trip(
    console: Console, console_server: ConsoleServer
) -> None:
    svc = console_server.services
    at = utc_now() - timedelta(minutes=2)
    body = declaration(declaration_id=TRIP, vehicle_id=VEHICLE, plate="粤A·EV001",
                       containers=[NUMBER], origin_gate=GATE)  # fmt: skip
    svc.store.create_declaration(body, at - timedelta(minutes=5), ACCOUNTS["supervisor"])
    console_server.pass_gate(GATE, "P-EV-C1", at, containers=[NUMBER], plate="粤A·EV001")
    console.login(ACCOUNTS["officer"])
    console.page.wait_for_url("**/")
    console.goto("/gates")
    card = console.page.locator('article.lane[data-passage="P-EV-C1"]')
    expect(card.locator(".evidence")).to_have_attribute("data-count", "0")

    token = device_token(console_server)
    read = TextBox(kind="container", text=NUMBER, confidence=0.93, needs_review=False,
                   box=(100, 80, 420, 130))  # fmt: skip
    doubt = TextBox(kind="plate", text="粤A·EV001", confidence=0.55, needs_review=True,
                    box=(450, 250, 600, 300))  # fmt: skip
    upload(console_server, token, "P-EV-C1", 0,
           ImageMeta(kind="frame", camera="rear", texts=[read, doubt]), door())  # fmt: skip
    crop = ImageMeta(kind="crop", camera="rear", frame=0,
                     texts=[read.model_copy(update={"box": (10, 10, 330, 60)})])  # fmt: skip
    upload(console_server, token, "P-EV-C1", 1, crop, door(340, 70))

    # The page was open: the passage comes again on the stream with its images.
    frame = card.locator('figure.evidence-thumb.frame[data-n="0"]')
    expect(frame).to_be_visible()
    expect(card.locator("figure.evidence-thumb.crop")).to_have_count(1)
    boxes = frame.locator("g.evidence-box")
    expect(boxes).to_have_count(2)
    expect(frame.locator(f'g.evidence-box[data-text="{NUMBER}"] text')).to_have_text(
        f"{NUMBER} 93%"
    )
    expect(frame.locator("g.evidence-box.review")).to_have_attribute("data-text", "粤A·EV001")
    card.locator("figure.evidence-thumb.crop").click()  # a crop opens its frame
    dialog = console.page.locator("dialog.evidence-dialog")
    expect(dialog).to_have_attribute("data-n", "0")
    expect(dialog.locator(".evidence-full img")).to_have_attribute(
        "src", "/api/v1/passages/P-EV-C1/images/0"
    )
    console.page.wait_for_function(
        "() => document.querySelector('dialog.evidence-dialog img').naturalWidth === 640"
    )
    console.page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    console.goto(f"/trip?id={TRIP}")
    entry = console.page.locator("#timeline li[data-kind='passage'][data-ref='P-EV-C1']")
    expect(entry.locator("figure.evidence-thumb")).to_have_count(2)
    expect(entry.locator('g.evidence-box[data-text="EVDU1000019"]')).to_have_count(2)
    console.screenshot("trip-evidence")
    assert console.console_errors == []
    # The images themselves: the officer's session, yes; none, no.
    status, _ = console.api("GET", "/api/v1/passages/P-EV-C1/images")
    assert status == 200
    assert (
        httpx.get(f"{console_server.base_url}/api/v1/passages/P-EV-C1/images/0").status_code == 401
    )
