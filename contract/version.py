"""Version constants of the public interface (see docs/contract.md)."""

from typing import Final

#: Every MQTT topic starts with this prefix; a breaking change would be `bondwatch/v2`.
TOPIC_PREFIX: Final = "bondwatch/v1"
#: Version of the payload schemas; new optional fields bump the minor part.
CONTRACT_VERSION: Final = "1.0"
#: REST prefix.
API_PREFIX: Final = "/api/v1"
