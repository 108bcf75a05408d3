"""The one shared package: MQTT topics, payload models, command signing, versions.

Imported by `edge` and `server`; imports nothing else of the project but the device
libraries' own words (the lock's states and events, `devices.elock.profile`).
"""

from contract.version import CONTRACT_VERSION, TOPIC_PREFIX

__all__ = ["CONTRACT_VERSION", "TOPIC_PREFIX"]
