"""Storage behind one interface: SQLite (embedded default) and PostgreSQL (production)."""

from server.store.database import Store, StoreError

__all__ = ["Store", "StoreError"]
