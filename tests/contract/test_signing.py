import base64
import json
from datetime import timedelta

import pytest

from contract.ids import utc_now
from contract.payloads import GateCommand, TruckCommand
from contract.signing import (
    CommandVerifier,
    MemoryNonceStore,
    generate_private_key,
    load_private_key,
    load_public_key,
    load_verify_key,
    new_nonce,
    private_key_to_pem,
    public_key_to_pem,
    sign,
)


@pytest.fixture
def key():
    return generate_private_key()


def gate_command(**over):
    now = utc_now()
    fields = {
        "node_id": "G1",
        "command_id": "c-1",
        "passage_id": "p-1",
        "lane": "2",
        "action": "open",
        "reasons": ["declaration D1 matched", "lock sealed"],
        "issued_at": now,
        "expires_at": now + timedelta(seconds=30),
        "nonce": new_nonce(),
    }
    fields.update(over)
    return GateCommand(**fields)


def verifier(key, node="G1"):
    return CommandVerifier(key.public_key(), node, MemoryNonceStore())


def test_signed_command_verifies_once(key):
    wire = sign(gate_command(), key).to_json()
    check = verifier(key)
    first = check.verify(GateCommand, wire)
    assert first.ok and first.command is not None and first.command.action == "open"
    replay = check.verify(GateCommand, wire)
    assert not replay.ok and replay.result == "refused" and "replay" in replay.detail


def test_canonical_form_is_what_is_signed(key):
    signed = sign(gate_command(), key)
    data = json.loads(signed.to_json())
    # Re-serialising with other spacing and key order must not matter.
    reordered = json.dumps(dict(reversed(list(data.items()))), indent=2, ensure_ascii=True)
    assert verifier(key).verify(GateCommand, reordered).ok


def test_every_single_flipped_byte_fails(key):
    wire = sign(gate_command(), key).to_json()
    check = verifier(key)
    for i in range(len(wire)):
        tampered = bytearray(wire)
        tampered[i] ^= 0x01
        outcome = check.verify(GateCommand, bytes(tampered))
        assert not outcome.ok, f"flipped byte {i} ({chr(wire[i])!r}) still verified"


def test_changed_field_fails_signature(key):
    data = json.loads(sign(gate_command(action="hold"), key).to_json())
    data["action"] = "open"
    outcome = verifier(key).verify(GateCommand, json.dumps(data))
    assert outcome.result == "bad_signature"


def test_other_key_fails(key):
    wire = sign(gate_command(), generate_private_key()).to_json()
    assert verifier(key).verify(GateCommand, wire).result == "bad_signature"


def test_missing_or_garbage_signature(key):
    unsigned = gate_command().to_json()
    assert verifier(key).verify(GateCommand, unsigned).result == "bad_signature"
    data = json.loads(unsigned)
    data["signature"] = "not base64!!"
    assert verifier(key).verify(GateCommand, json.dumps(data)).result == "bad_signature"
    data["signature"] = base64.b64encode(b"x" * 64).decode()
    assert verifier(key).verify(GateCommand, json.dumps(data)).result == "bad_signature"


def test_expired_command_rejected(key):
    past = utc_now() - timedelta(minutes=5)
    wire = sign(
        gate_command(issued_at=past, expires_at=past + timedelta(seconds=30)), key
    ).to_json()
    outcome = verifier(key).verify(GateCommand, wire)
    assert outcome.result == "expired"


def test_future_and_misaddressed_commands_refused(key):
    future = utc_now() + timedelta(minutes=10)
    wire = sign(gate_command(issued_at=future, expires_at=future + timedelta(minutes=1)), key)
    assert verifier(key).verify(GateCommand, wire.to_json()).result == "refused"
    other = sign(gate_command(node_id="G2"), key).to_json()
    outcome = verifier(key).verify(GateCommand, other)
    assert outcome.result == "refused" and "G2" in outcome.detail


def test_nonce_not_burnt_by_invalid_command(key):
    nonce = new_nonce()
    bad = json.loads(sign(gate_command(nonce=nonce), key).to_json())
    good_wire = json.dumps(bad)
    bad["lane"] = "9"
    check = verifier(key)
    assert check.verify(GateCommand, json.dumps(bad)).result == "bad_signature"
    assert check.verify(GateCommand, good_wire).ok


def test_malformed_command_refused(key):
    outcome = verifier(key).verify(TruckCommand, b'{"action": "unseal"}')
    assert outcome.result == "refused" and "malformed" in outcome.detail


def test_pem_round_trip(tmp_path, key):
    (tmp_path / "k.pem").write_bytes(private_key_to_pem(key))
    (tmp_path / "k.pub").write_bytes(public_key_to_pem(key.public_key()))
    loaded = load_private_key(tmp_path / "k.pem")
    wire = sign(gate_command(), loaded).to_json()
    check = CommandVerifier(load_public_key(tmp_path / "k.pub"), "G1", MemoryNonceStore())
    assert check.verify(GateCommand, wire).ok
    (tmp_path / "bad.pem").write_text("hello")
    with pytest.raises(ValueError, match=r"bad\.pem"):
        load_public_key(tmp_path / "bad.pem")


def test_a_deferred_key_verifies_and_refuses_as_the_library_key(tmp_path, key):
    (tmp_path / "k.pub").write_bytes(public_key_to_pem(key.public_key()))
    deferred = load_verify_key(tmp_path / "k.pub")
    assert deferred.raw == key.public_key().public_bytes_raw()
    wire = sign(gate_command(), key).to_json()
    assert CommandVerifier(deferred, "G1", MemoryNonceStore()).verify(GateCommand, wire).ok
    other = sign(gate_command(), generate_private_key()).to_json()
    refused = CommandVerifier(deferred, "G1", MemoryNonceStore()).verify(GateCommand, other)
    assert refused.result == "bad_signature"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("hello", "not a PEM public key"),
        ("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
        # an X25519 key: the same length, another algorithm (OID 1.3.101.110)
        (
            "-----BEGIN PUBLIC KEY-----\n"
            + base64.b64encode(bytes.fromhex("302a300506032b656e032100") + bytes(32)).decode()
            + "\n-----END PUBLIC KEY-----\n",
            "not an Ed25519 public key",
        ),
    ],
)
def test_a_deferred_key_file_is_checked_when_loaded(tmp_path, text, error):
    (tmp_path / "bad.pub").write_text(text)
    with pytest.raises(ValueError, match=error):
        load_verify_key(tmp_path / "bad.pub")
    # the library says the same of each
    with pytest.raises(ValueError, match=error):
        load_public_key(tmp_path / "bad.pub")
