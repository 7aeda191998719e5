"""Contracts shared by the gateway, the waiting room and the allocator, declared once.

Commands, events and state records travel on Kafka as msgpack maps, declared as
msgspec ``Struct``s (``schemas.message``: wire type and schema version ``v``); the
words they use (booking states, rejection reasons, ...) are ``StrEnum``s in
``schemas.states`` and their limits ``Annotated`` types in ``schemas.types``.
"""

from schemas.errors import SchemaError
from schemas.message import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "SchemaError"]
