from pathlib import Path

from contract.asyncapi import CHANNELS, render
from contract.payloads import EDGE_PAYLOADS

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_committed_asyncapi_matches_the_models():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/asyncapi.json is stale: run `python -m contract.asyncapi > docs/asyncapi.json`"
    )


def test_every_edge_payload_is_documented():
    documented = {model for _, _, model, _, _ in CHANNELS}
    assert set(EDGE_PAYLOADS.values()) <= documented
