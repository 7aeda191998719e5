"""The allocator: one single-threaded core per partition of ``booking-commands``.

``allocator.core`` is the pure decision logic (no I/O, no clock); ``allocator.service``
feeds it from Kafka and produces its events.
"""
