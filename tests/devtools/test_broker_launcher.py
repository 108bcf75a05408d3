import socket


def test_session_broker_listens_with_shared_settings(broker):
    with socket.create_connection((broker.host, broker.port), timeout=2):
        pass
    text = broker.config_path.read_text()
    assert "include_dir" in text and f"listener {broker.port} 127.0.0.1" in text


def test_broker_persists_sessions_across_a_restart(own_broker):
    """Persistence really writes (as root too: the broker must not drop to a user that
    cannot write its data directory)."""
    own_broker.stop()
    assert (own_broker.workdir / "data" / "mosquitto.db").exists()
    own_broker.start()
