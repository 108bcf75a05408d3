"""`bondwatch-broker`: the site CA, certificates and the access list from a registry;
bad input gets a clear error and writes nothing. And the server's connection accounts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ValidationError

from contract.broker import BrokerSettings
from contract.broker_admin import main
from contract.pki import common_name
from server.broker_accounts import BrokerAccount, BrokerAccounts, connection_settings
from server.config import ServerConfig


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_ca_and_certificates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca, out = tmp_path / "ca", tmp_path / "out"
    assert main(["ca", str(ca), "--name", "Test CA"]) == 0
    assert stat.S_IMODE((ca / "ca.key").stat().st_mode) == 0o600
    assert main(["broker-cert", str(ca), "mqtt.example", "10.0.0.5", "--out", str(out)]) == 0
    assert main(["cert", str(ca), "TRK-1", "srv-1-passages", "--out", str(out)]) == 0
    assert common_name(out / "TRK-1.crt") == "TRK-1"
    assert stat.S_IMODE((out / "TRK-1.key").stat().st_mode) == 0o600
    device = x509.load_pem_x509_certificate((out / "TRK-1.crt").read_bytes())
    ca_cert = x509.load_pem_x509_certificate((ca / "ca.crt").read_bytes())
    device.verify_directly_issued_by(ca_cert)
    usage = device.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    broker = x509.load_pem_x509_certificate((out / "broker.crt").read_bytes())
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["mqtt.example", "10.0.0.5"]
    assert "keep the key offline" in capsys.readouterr().out


def test_bad_input_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca, out = tmp_path / "ca", tmp_path / "out"
    assert main(["cert", str(ca), "TRK-1", "--out", str(out)]) == 2  # no CA yet
    assert "create the CA first" in capsys.readouterr().err
    assert main(["ca", str(ca), "--name", "Test CA"]) == 0
    before = (ca / "ca.key").read_bytes()
    assert main(["ca", str(ca), "--name", "Again"]) == 2  # never overwrites a CA
    assert "exists already" in capsys.readouterr().err
    assert (ca / "ca.key").read_bytes() == before
    # One bad name: none of the accounts is issued.
    assert main(["cert", str(ca), "TRK-1", "bad/name", "--out", str(out)]) == 2
    assert "bad/name" in capsys.readouterr().err
    assert not out.exists() or _files(out) == set()
    assert main(["cert", str(ca), "TRK-1", "--out", str(out)]) == 0
    first = (out / "TRK-1.crt").read_bytes()
    assert main(["cert", str(ca), "TRK-1", "--out", str(out)]) == 2  # no silent reissue
    assert (out / "TRK-1.crt").read_bytes() == first


def test_acl_from_a_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "site.yaml"
    registry.write_text("servers: [srv-1]\ntrucks: [TRK-1]\ngates: [G-1]\n")
    acl = tmp_path / "bondwatch.acl"
    assert main(["acl", str(registry), "-o", str(acl)]) == 0
    blocks = {b.split("\n")[1]: b for b in acl.read_text().split("\n\n")[1:] if b.strip()}
    assert set(blocks) == {
        "user srv-1",
        "user srv-1-commands",
        "user srv-1-passages",
        "user srv-1-gate-commands",
        "user TRK-1",
        "user G-1",
    }
    truck = blocks["user TRK-1"]
    assert "topic write bondwatch/v1/truck/TRK-1/position" in truck
    assert "topic read bondwatch/v1/truck/TRK-1/command" in truck
    assert "topic read bondwatch/v1/truck/TRK-1/ack" in truck
    rules = [line for line in truck.splitlines() if line.startswith("topic ")]
    assert len(rules) == 7 and not any("gate" in r or "#" in r or "+" in r for r in rules)
    assert "topic write bondwatch/v1/gate/G-1/passage" in blocks["user G-1"]
    assert "position" not in blocks["user G-1"]
    capsys.readouterr()
    assert main(["accounts", str(registry)]) == 0
    assert capsys.readouterr().out.split() == [
        "srv-1", "srv-1-commands", "srv-1-passages", "srv-1-gate-commands", "TRK-1", "G-1",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("trucks: [X-1]\ngates: [X-1]\n", "listed as truck and as gate"),
        ("servers: [srv-1]\ntrucks: [srv-1-passages]\n", "listed as server and as truck"),
        ("trucks: [TRK/1]\n", "trucks.0"),
        ("servers: [" + "s" * 51 + "]\n", "longer than 50"),
        ("lorries: [TRK-1]\n", "unknown key"),
    ],
)
def test_a_bad_registry_writes_no_acl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, error: str
) -> None:
    registry = tmp_path / "site.yaml"
    registry.write_text(text)
    acl = tmp_path / "bondwatch.acl"
    acl.write_text("the old list\n")
    assert main(["acl", str(registry), "-o", str(acl)]) == 2
    assert error in capsys.readouterr().err
    assert acl.read_text() == "the old list\n"


def test_each_server_connection_has_its_own_account(tmp_path: Path) -> None:
    broker = BrokerSettings(client_id="srv-7", password_file=tmp_path / "shared")
    own = BrokerAccount(cert_file=tmp_path / "p.crt", key_file=tmp_path / "p.key")
    accounts = BrokerAccounts(passages=own, commands=BrokerAccount(username="cmd-user"))
    ingest = connection_settings(broker, accounts, "ingest")
    assert (ingest.client_id, ingest.username, ingest.password_file) == (
        "srv-7", "srv-7", tmp_path / "shared",
    )  # fmt: skip
    passages = connection_settings(broker, accounts, "passages")
    assert (passages.client_id, passages.username) == ("srv-7-passages", "srv-7-passages")
    assert passages.cert_file == tmp_path / "p.crt"
    commands = connection_settings(broker, accounts, "commands")
    assert (commands.client_id, commands.username) == ("srv-7-commands", "cmd-user")
    gate = connection_settings(broker, accounts, "gate_commands")
    assert gate.client_id == gate.username == "srv-7-gate-commands"
    with pytest.raises(ValidationError, match="broker_accounts"):
        ServerConfig(broker=BrokerSettings(username="bondwatch-server"))
    with pytest.raises(ValidationError, match="together"):
        BrokerAccount(cert_file=tmp_path / "p.crt")
