"""The gate agent (`bondwatch-edge gate --config FILE`): one lane's loop, barrier,
cameras and OCR wired to MQTT. See docs/gate-agent.md."""
