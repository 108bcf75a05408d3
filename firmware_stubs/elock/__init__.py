"""A simulated BondWatch e-lock: `python -m firmware_stubs.elock --lock-id L1 --secret …`."""
