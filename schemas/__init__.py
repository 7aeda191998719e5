"""Message formats shared by the gateway, the waiting room and the allocator.

Commands and events travel on Kafka as msgpack maps with a schema version field
``v``; HTTP bodies are JSON (orjson). Each message type is defined once here,
together with its validation.
"""

from schemas.errors import SchemaError
from schemas.wire import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "SchemaError"]
