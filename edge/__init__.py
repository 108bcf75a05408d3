"""Edge agents: the truck gateway and the gate controller, wired to MQTT."""
