"""The one exception raised for a message that does not match its schema."""


class SchemaError(ValueError):
    """A message or HTTP body that does not match its schema.

    ``code`` is a short machine-readable reason (used as the JSON error code);
    the message says what is wrong in words a client developer understands.
    """

    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
