"""A simulated cellular vehicle tracker (JT/T 808 over TCP)."""
