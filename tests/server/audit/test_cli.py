"""`bondwatch-server audit verify --config FILE`, run as a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from server.store import Store
from tests.server.audit.conftest import fill

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "server.yaml"
    path.write_text(f"storage:\n  url: {url}\n", encoding="utf-8")
    return path


def test_verify_intact_then_tampered(tmp_path, store_url):
    url = store_url
    store = Store.open(url)
    fill(store, 5)
    cfg = config(tmp_path, url)
    ok = run("audit", "verify", "--config", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "audit log intact: 5 entries"
    as_json = run("audit", "verify", "--config", str(cfg), "--json")
    assert as_json.stdout.strip() == '{"ok": true, "entries": 5}'
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET object_id = 'OBJ-X' WHERE seq = 3"))
    store.close()
    bad = run("audit", "verify", "--config", str(cfg))
    assert bad.returncode == 1
    assert "BROKEN at seq 3" in bad.stdout and "entry 3 was edited" in bad.stdout


def test_anchor_then_truncation_with_rewound_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store.open(url)
    fill(store, 6)
    cfg = config(tmp_path, url)
    anchors = tmp_path / "anchors" / "audit.jsonl"
    pinned = run("audit", "anchor", "--config", str(cfg), "--anchor", str(anchors))
    assert pinned.returncode == 0 and "anchored seq 6" in pinned.stdout
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 6"))
        prev = conn.execute(text("SELECT hash FROM audit_log WHERE seq = 5")).scalar_one()
        conn.execute(text("UPDATE audit_head SET seq = 5, hash = :h"), {"h": prev})
    store.close()
    assert run("audit", "verify", "--config", str(cfg)).returncode == 0  # the limit
    caught = run("audit", "verify", "--config", str(cfg), "--anchor", str(anchors))
    assert caught.returncode == 1 and "BROKEN at seq 6" in caught.stdout


def test_cannot_run_without_a_database_and_server_cli_unchanged(tmp_path):
    cfg = config(tmp_path, f"sqlite:///{tmp_path / 'missing.db'}")
    res = run("audit", "verify", "--config", str(cfg))
    assert res.returncode == 2 and "no SQLite database" in res.stderr
    assert not (tmp_path / "missing.db").exists()  # verify never creates or migrates
    assert run("audit", "verify").returncode == 2  # --config is required (argparse)
    unreachable = config(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none")
    res = run("audit", "verify", "--config", str(unreachable))
    assert res.returncode == 2 and "cannot reach the database" in res.stderr
    validated = run("--config", str(cfg), "--validate-config")
    assert validated.returncode == 0 and "OK" in validated.stdout


def checkpointed_config(tmp_path: Path, url: str, folder: Path, key: Path) -> Path:
    path = tmp_path / "server-checkpoints.yaml"
    path.write_text(
        f"storage:\n  url: {url}\n"
        f"audit:\n  checkpoints:\n    key_file: {key}\n    folder: {folder}\n",
        encoding="utf-8",
    )
    return path


def test_keygen_checkpoint_and_verify_exit_codes(tmp_path, store_url):
    private, public = tmp_path / "keys" / "audit.pem", tmp_path / "keys" / "audit.pub"
    private.parent.mkdir()
    made = run("audit", "keygen", "--private", str(private), "--public", str(public))
    assert made.returncode == 0 and "audit key " in made.stdout, made.stderr
    assert private.stat().st_mode & 0o777 == 0o600
    again = run("audit", "keygen", "--private", str(private), "--public", str(public))
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites a key
    store = Store.open(store_url)
    fill(store, 4)
    folder = tmp_path / "checkpoints"
    cfg = checkpointed_config(tmp_path, store_url, folder, private)
    plain = config(tmp_path, store_url)
    written = run("audit", "checkpoint", "--config", str(cfg))
    assert written.returncode == 0 and "checkpoint: seq 4, 4 entries" in written.stdout
    ok = run("audit", "verify", "--config", str(cfg))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == "audit log intact: 4 entries, 1 signed checkpoints hold"
    # A forged checkpoint line beside the real one.
    (day,) = folder.iterdir()
    line = day.read_text().strip()
    day.write_text(line + "\n" + line.replace('"count":4', '"count":5') + "\n")
    forged = run("audit", "verify", "--config", str(cfg))
    assert forged.returncode == 1 and "bad signature" in forged.stdout
    assert f"{day.name}:2" in forged.stdout
    day.write_text(line + "\n")
    # Entry 2 rewritten and every hash after it recomputed, in the database alone.
    from tests.server.audit.test_checkpoints import rewrite

    rewrite(store, edit_seq=2)
    store.close()
    assert run("audit", "verify", "--config", str(plain)).returncode == 0  # chain alone: blind
    caught = run("audit", "verify", "--config", str(cfg))
    assert caught.returncode == 1
    assert (
        "BROKEN at seq 4: entry 4 no longer has the hash checkpoint checkpoints-" in caught.stdout
    )
    # The same, with only the public key, on another host reading the folder.
    elsewhere = run(
        "audit", "verify", "--config", str(plain),
        "--checkpoints", str(folder), "--public-key", str(public), "--json",
    )  # fmt: skip
    assert elsewhere.returncode == 1
    answer = json.loads(elsewhere.stdout)
    assert answer["first_bad_seq"] == 4 and answer["checkpoints"] == 1
    assert answer["checkpoint"].endswith(".log:1")
    # Cannot run: no public key for --checkpoints, a missing checkpoint folder.
    nokey = run("audit", "verify", "--config", str(plain), "--checkpoints", str(folder))
    assert nokey.returncode == 2 and "--public-key" in nokey.stderr
    day.unlink()
    folder.rmdir()
    gone = run("audit", "verify", "--config", str(cfg))
    assert gone.returncode == 2 and "no checkpoint folder or file" in gone.stderr
