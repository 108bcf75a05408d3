"""Edge agents: the truck gateway and the gate controller, on MQTT through a durable outbox."""
