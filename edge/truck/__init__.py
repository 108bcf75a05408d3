"""The truck agent: GNSS and e-lock drivers → reporting policy → outbox → MQTT."""
