"""The open declarations a gateway maps its locks by: the trucks' `declared` lists.

The server publishes each truck's open trips and their locks, retained, on
`bondwatch/v1/truck/{node}/declared` (`server.declared`); the gateway subscribes for the
trucks of its registry's `fleet` (`edge.jt808.uplink`) and keeps the newest list of
each here. An empty payload is the server clearing a truck's list (no open trip). A
payload the contract refuses changes nothing: it is counted (`declared_refused_total`
by reason) and logged.

On each new broker connection the broker sends the retained lists again; a truck whose
list was cleared while the gateway was away sends nothing, so `begin` marks every list
unconfirmed and `settle` (a few seconds after subscribing) drops the lists that were
not sent again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from contract.cellular_registry import DeclaredLocks
from contract.limits import MAX_PAYLOAD_BYTES
from contract.payloads import Declared, PayloadError, decode

log = logging.getLogger(__name__)

#: Called with every open declaration the lists hold, after a change.
OnChange = Callable[[list[DeclaredLocks]], object]


class DeclaredLists:
    def __init__(self, on_change: OnChange, refused: Counter[str] | None = None) -> None:
        self.on_change = on_change
        self.lists: dict[str, tuple[DeclaredLocks, ...]] = {}
        #: lists refused, by reason (the gateway's `declared_refused_total`)
        self.refused: Counter[str] = Counter() if refused is None else refused
        self.applied = 0
        self._unconfirmed: set[str] = set()

    def declarations(self) -> list[DeclaredLocks]:
        return [d for node in sorted(self.lists) for d in self.lists[node]]

    def receive(self, node_id: str, raw: bytes) -> None:
        """A truck's list from the broker (the topic's `node_id`)."""
        self._unconfirmed.discard(node_id)
        if raw:
            try:
                message = decode(Declared, raw, MAX_PAYLOAD_BYTES["declared"])
            except PayloadError as err:
                self._refuse(node_id, err.reason, str(err))
                return
            if message.node_id != node_id:
                self._refuse(
                    node_id, "node_mismatch", f"payload names {message.node_id}, not {node_id}"
                )
                return
            new = tuple(
                DeclaredLocks(trip.trip_id, node_id, tuple(trip.lock_ids), trip.started)
                for trip in message.trips
            )
        else:
            new = ()
        self._set(node_id, new)

    def begin(self) -> None:
        """A new broker connection: every list waits to be sent again."""
        self._unconfirmed = set(self.lists)

    def settle(self) -> None:
        """Drop the lists the broker did not send again since `begin` (cleared meanwhile)."""
        gone, self._unconfirmed = self._unconfirmed, set()
        changed = False
        for node_id in gone:
            if self.lists.pop(node_id, None) is not None:
                log.info("truck %s: its declared list is gone from the broker", node_id)
                changed = True
        if changed:
            self.on_change(self.declarations())

    def _set(self, node_id: str, new: tuple[DeclaredLocks, ...]) -> None:
        if self.lists.get(node_id, ()) == new:
            return
        if new:
            self.lists[node_id] = new
        else:
            self.lists.pop(node_id, None)
        self.applied += 1
        log.info(
            "truck %s: open trips %s",
            node_id,
            ", ".join(f"{d.trip_id} {list(d.lock_ids)}" for d in new) or "none",
        )
        self.on_change(self.declarations())

    def _refuse(self, node_id: str, reason: str, detail: str) -> None:
        self.refused[reason] += 1
        log.warning("truck %s: declared list refused (%s): %s", node_id, reason, detail)
