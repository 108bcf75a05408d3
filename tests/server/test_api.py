from tests.server.conftest import declaration


def test_geography_endpoints(api):
    routes = api.get("/api/v1/routes").json()
    lines = [f for f in routes["features"] if f["geometry"]["type"] == "LineString"]
    assert {f["properties"]["route_id"] for f in lines} == {"R-HP-BY", "R-NS-BY"}
    for f in lines:
        lon, lat = f["geometry"]["coordinates"][0]
        assert 112 < lon < 115 and 22 < lat < 24  # [lon, lat] order, Guangdong
    sites = [f for f in routes["features"] if f["properties"]["kind"] == "site"]
    assert len({f["properties"]["site_id"] for f in sites}) == len(sites) == 3
    gates = api.get("/api/v1/gates").json()["features"]
    assert {g["properties"]["gate_id"] for g in gates} == {
        "G-HUANGPU-1",
        "G-NANSHA-2",
        "G-BAIYUN-1",
    }
    kinds = {z["properties"]["kind"] for z in api.get("/api/v1/zones").json()["features"]}
    assert kinds == {"forbidden", "stop", "tunnel", "urban"}


def test_register_declaration_and_read_trip(api):
    res = api.post("/api/v1/declarations", json=declaration())
    assert res.status_code == 201, res.text
    assert res.json()["status"] == "declared"
    trip = api.get("/api/v1/trips/D-0001", params={"track": 1}).json()
    assert trip["vehicle_id"] == "TRK-1" and trip["track"] == []
    assert [t["trip_id"] for t in api.get("/api/v1/trips").json()] == ["D-0001"]
    assert api.get("/api/v1/trips", params={"status": "in_transit"}).json() == []


def test_bad_declarations_change_nothing(api):
    cases = [
        (declaration(route_id="R-NOPE"), 422, "route_id"),
        (declaration(origin_gate="G-X"), 422, "origin_gate"),
        (declaration(containers=["CSQU305438"]), 422, "containers.0"),
        (declaration(time_limit_min=0), 422, "time_limit_min"),
        (declaration(colour="red"), 422, "colour"),
        (
            declaration(enterprise={"code": "1", "name": "x", "credit": "excellent"}),
            422,
            "enterprise.credit",
        ),
    ]
    for body, status, field in cases:
        res = api.post("/api/v1/declarations", json=body)
        assert res.status_code == status, (body, res.text)
        error = res.json()["error"]
        assert error["field"] == field and error["code"] == "invalid" and error["message"]
    assert api.get("/api/v1/trips").json() == []
    assert api.post("/api/v1/declarations", json=declaration()).status_code == 201
    dup = api.post("/api/v1/declarations", json=declaration(vehicle_id="TRK-9"))
    assert dup.status_code == 409 and dup.json()["error"]["field"] == "declaration_id"
    assert api.get("/api/v1/trips/D-0001").json()["vehicle_id"] == "TRK-1"


def test_errors_in_contract_shape(api):
    res = api.get("/api/v1/trips/NOPE")
    assert res.status_code == 404
    assert res.json() == {
        "error": {"code": "not_found", "message": "no trip 'NOPE'", "field": "trip_id"}
    }
    res = api.post(
        "/api/v1/declarations", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert res.status_code == 422 and res.json()["error"]["code"] == "invalid"
    assert api.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"


def test_health_metrics_console_and_openapi(api):
    assert api.get("/healthz").json()["status"] == "ok"
    assert api.get("/api/v1/healthz").status_code == 200
    assert "# TYPE" in api.get("/metrics").text or api.get("/metrics").text == "\n"
    page = api.get("/")
    assert page.status_code == 200 and "BondWatch" in page.text
    assert api.get("/static/console.js").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/declarations",
        "/api/v1/trips",
        "/api/v1/trips/{trip_id}",
        "/api/v1/routes",
    ):
        assert path in paths


def test_vehicle_positions_with_their_open_trips(api, services):
    from datetime import timedelta

    from contract.ids import utc_now
    from contract.payloads import Position
    from server.store.database import IncomingMessage

    now = utc_now()
    services.store.create_declaration(declaration(declaration_id="D-P1", vehicle_id="TRK-P1"), now)
    services.store.start_trip("D-P1", now)
    batch = []
    for node, seq, lon in (("TRK-P1", 1, 113.40), ("TRK-P1", 2, 113.41), ("TRK-P2", 1, 113.5)):
        msg = Position(
            node_id=node,
            seq=seq,
            ts=now + timedelta(seconds=seq),
            lat=23.1,
            lon=lon,
            fix="3d",
        )
        batch.append(IncomingMessage("position", msg, msg.model_dump_json(), now))
    services.store.store_messages(batch)
    body = {p["vehicle_id"]: p for p in api.get("/api/v1/vehicles/positions").json()}
    assert (body["TRK-P1"]["seq"], body["TRK-P1"]["lon"]) == (2, 113.41)
    assert (body["TRK-P1"]["trip_id"], body["TRK-P1"]["route_id"]) == ("D-P1", "R-HP-BY")
    assert (body["TRK-P2"]["trip_id"], body["TRK-P2"]["route_id"]) == (None, None)
