"""Configuration files: examples validate, errors are listed with paths, the doc is true."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.tools.config_reference import render

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_reference_matches_the_models():
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/configuration.md is stale: "
        "python -m tests.tools.config_reference > docs/configuration.md"
    )


def test_example_files_validate():
    server = run("-m", "server", "--config", "config/examples/server.yaml", "--validate-config")
    assert server.returncode == 0, server.stderr
    truck = run(
        "-m", "edge", "truck", "--config", "config/examples/truck.yaml", "--validate-config"
    )
    assert truck.returncode == 0, truck.stderr
    assert "OK" in truck.stdout


def test_every_error_is_listed_with_its_path(tmp_path):
    bad = tmp_path / "truck.yaml"
    bad.write_text(
        "node_id: T/1\n"
        "broker: {port: 99999}\n"
        "outbox: {path: o.db}\n"
        "gnss: {type: nmea, port: /dev/ttyS1, baudrate: 9600, colour: red}\n"
        "lock: {type: jt808, port: /dev/ttyS1, lock_ids: [L1]}\n"
    )
    result = run("-m", "edge", "truck", "--config", str(bad), "--validate-config")
    assert result.returncode == 1
    text = result.stderr
    for path in ("node_id", "broker.port", "outbox.nonce_path", "gnss.colour", "server_public_key"):
        assert path in text, f"{path} missing from:\n{text}"


def test_shared_port_named_with_the_fix(tmp_path):
    bad = tmp_path / "truck.yaml"
    bad.write_text(
        "node_id: T1\nserver_public_key: k.pub\n"
        "outbox: {path: o.db, nonce_path: n.db}\n"
        "gnss: {type: nmea, port: /dev/ttyS1}\n"
        "lock: {type: jt808, port: /dev/ttyS1, lock_ids: [L1]}\n"
    )
    result = run("-m", "edge", "truck", "--config", str(bad), "--validate-config")
    assert result.returncode == 1
    assert "/dev/ttyS1, which gnss already uses" in result.stderr


def test_unknown_driver_type_names_the_allowed_ones(tmp_path):
    bad = tmp_path / "truck.yaml"
    bad.write_text(
        "node_id: T1\nserver_public_key: k.pub\n"
        "outbox: {path: o.db, nonce_path: n.db}\n"
        "gnss: {type: ubx, port: /dev/ttyS1}\n"
    )
    result = run("-m", "edge", "truck", "--config", str(bad), "--validate-config")
    assert result.returncode == 1
    assert "gnss.type" in result.stderr and "'nmea'" in result.stderr


def test_unreadable_and_empty_files(tmp_path):
    missing = run("-m", "server", "--config", str(tmp_path / "nope.yaml"), "--validate-config")
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = run("-m", "server", "--config", str(empty), "--validate-config")
    assert result.returncode == 1 and "empty" in result.stderr


def test_a_removed_share_group_is_refused_with_its_reason(tmp_path):
    """`ingest.share_group` split one truck's messages between servers; a file that
    still sets it is refused, saying why, and the same file without it is valid."""
    base = "storage: {url: 'sqlite:///s.db'}\n"
    old = tmp_path / "old.yaml"
    old.write_text(base + "ingest: {share_group: bondwatch, batch_max: 200}\n")
    result = run("-m", "server", "--config", str(old), "--validate-config")
    assert result.returncode == 1
    assert "ingest" in result.stderr and "share_group was removed" in result.stderr
    assert "judged its own part of the trip" in result.stderr
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(base + "ingest: {batch_max: 200}\n")
    ok = run("-m", "server", "--config", str(fixed), "--validate-config")
    assert ok.returncode == 0, ok.stderr


def test_several_judge_workers_are_processes(tmp_path):
    """`ingest.judge_workers` above 1 needs the judge in processes, and is bounded."""
    base = "storage: {url: 'sqlite:///s.db'}\n"
    thread = tmp_path / "thread.yaml"
    thread.write_text(base + "ingest: {judge: thread, judge_workers: 2}\n")
    result = run("-m", "server", "--config", str(thread), "--validate-config")
    assert result.returncode == 1
    assert "judge_workers is 2 but judge is `thread`" in result.stderr
    many = tmp_path / "many.yaml"
    many.write_text(base + "ingest: {judge_workers: 17}\n")
    result = run("-m", "server", "--config", str(many), "--validate-config")
    assert result.returncode == 1 and "judge_workers" in result.stderr
    two = tmp_path / "two.yaml"
    two.write_text(base + "ingest: {judge_workers: 2}\n")
    ok = run("-m", "server", "--config", str(two), "--validate-config")
    assert ok.returncode == 0, ok.stderr
