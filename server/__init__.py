"""The BondWatch server: ingest, trips, geography, rules, alarms, gates, storage, REST, console."""
