from sqlalchemy import text

from tests.server.conftest import declaration


def test_declarations_are_audited_and_filtered(api):
    for n in range(1, 4):
        body = declaration(declaration_id=f"D-000{n}", vehicle_id=f"TRK-{n}")
        assert api.post("/api/v1/declarations", json=body).status_code == 201
    # The login of the test's account came first (auth.login, user.create).
    declared = {"object_type": "declaration"}
    entries = api.get("/api/v1/audit", params=declared).json()
    assert [e["object_id"] for e in entries] == ["D-0003", "D-0002", "D-0001"]  # newest first
    first = entries[-1]
    assert (first["action"], first["actor"]) == ("declaration.create", "test-supervisor")
    assert first["details"]["enterprise"]["credit"] == "advanced"
    assert entries[-2]["prev_hash"] == first["hash"]  # consecutive entries, chained
    seqs = [e["seq"] for e in entries]
    res = api.get("/api/v1/audit", params={"object_id": "D-0002"})
    assert [e["seq"] for e in res.json()] == [seqs[1]] and res.headers["X-Total-Count"] == "1"
    res = api.get("/api/v1/audit", params={**declared, "limit": 1, "offset": 1, "order": "asc"})
    assert [e["seq"] for e in res.json()] == [seqs[1]] and res.headers["X-Total-Count"] == "3"
    since = entries[0]["at"]
    recent = api.get("/api/v1/audit", params={"since": since}).json()
    assert recent[0]["seq"] == seqs[0] and all(e["at"] >= since for e in recent)
    assert api.get("/api/v1/audit", params={"until": "2000-01-01T00:00:00Z"}).json() == []
    by_actor = api.get("/api/v1/audit", params={**declared, "actor": "test-supervisor"})
    assert by_actor.headers["X-Total-Count"] == "3"
    assert api.get("/api/v1/audit", params={"action": "alarm.ack"}).json() == []
    bad = api.get("/api/v1/audit", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "since"


def test_verify_endpoint_reports_tampering(api, services):
    before = api.get("/api/v1/audit/verify").json()["entries"]  # the test account's login
    for n in range(1, 4):
        api.post("/api/v1/declarations", json=declaration(declaration_id=f"D-000{n}"))
    assert api.get("/api/v1/audit/verify").json() == {"ok": True, "entries": before + 3}
    victim = before + 2
    with services.store.engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_log SET actor = 'someone.else' WHERE seq = {victim}"))
    result = api.get("/api/v1/audit/verify").json()
    assert result["ok"] is False and result["entries"] == before + 3
    assert result["first_bad_seq"] == victim
    assert f"entry {victim} was edited" in result["reason"]


def test_refused_declaration_leaves_no_audit_entry(api):
    before = api.get("/api/v1/audit/verify").json()["entries"]
    assert api.post("/api/v1/declarations", json=declaration()).status_code == 201
    assert api.post("/api/v1/declarations", json=declaration()).status_code == 409
    assert api.post("/api/v1/declarations", json=declaration(route_id="R-X")).status_code == 422
    assert api.get("/api/v1/audit/verify").json() == {"ok": True, "entries": before + 1}
