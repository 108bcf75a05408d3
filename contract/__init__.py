"""The one shared package: MQTT topics, payload models, command signing, versions.

Imported by `edge` and `server`; imports nothing else of the project.
"""

from contract.version import CONTRACT_VERSION, TOPIC_PREFIX

__all__ = ["CONTRACT_VERSION", "TOPIC_PREFIX"]
