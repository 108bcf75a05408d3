from sqlalchemy import text

from tests.server.conftest import declaration


def test_declarations_are_audited_and_filtered(api):
    for n in range(1, 4):
        body = declaration(declaration_id=f"D-000{n}", vehicle_id=f"TRK-{n}")
        assert api.post("/api/v1/declarations", json=body).status_code == 201
    entries = api.get("/api/v1/audit").json()
    assert [e["seq"] for e in entries] == [3, 2, 1]  # newest first
    first = entries[-1]
    assert (first["action"], first["object_type"], first["object_id"]) == (
        "declaration.create",
        "declaration",
        "D-0001",
    )
    assert first["details"]["enterprise"]["credit"] == "advanced"
    assert first["prev_hash"] == "0" * 64 and entries[-2]["prev_hash"] == first["hash"]
    res = api.get("/api/v1/audit", params={"object_id": "D-0002"})
    assert [e["seq"] for e in res.json()] == [2] and res.headers["X-Total-Count"] == "1"
    res = api.get("/api/v1/audit", params={"limit": 1, "offset": 1, "order": "asc"})
    assert [e["seq"] for e in res.json()] == [2] and res.headers["X-Total-Count"] == "3"
    since = entries[0]["at"]
    recent = api.get("/api/v1/audit", params={"since": since}).json()
    assert recent[0]["seq"] == 3 and all(e["at"] >= since for e in recent)
    assert api.get("/api/v1/audit", params={"until": "2000-01-01T00:00:00Z"}).json() == []
    assert api.get("/api/v1/audit", params={"actor": "anonymous"}).headers["X-Total-Count"] == "3"
    assert api.get("/api/v1/audit", params={"action": "alarm.ack"}).json() == []
    bad = api.get("/api/v1/audit", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "since"


def test_verify_endpoint_reports_tampering(api, services):
    for n in range(1, 4):
        api.post("/api/v1/declarations", json=declaration(declaration_id=f"D-000{n}"))
    assert api.get("/api/v1/audit/verify").json() == {"ok": True, "entries": 3}
    with services.store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone.else' WHERE seq = 2"))
    result = api.get("/api/v1/audit/verify").json()
    assert result["ok"] is False and result["entries"] == 3 and result["first_bad_seq"] == 2
    assert "entry 2 was edited" in result["reason"]


def test_refused_declaration_leaves_no_audit_entry(api):
    assert api.post("/api/v1/declarations", json=declaration()).status_code == 201
    assert api.post("/api/v1/declarations", json=declaration()).status_code == 409
    assert api.post("/api/v1/declarations", json=declaration(route_id="R-X")).status_code == 422
    assert api.get("/api/v1/audit/verify").json() == {"ok": True, "entries": 1}
