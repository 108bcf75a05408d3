import socket


def test_session_broker_listens_with_shared_settings(broker):
    with socket.create_connection((broker.host, broker.port), timeout=2):
        pass
    text = broker.config_path.read_text()
    assert "include_dir" in text and f"listener {broker.port} 127.0.0.1" in text
