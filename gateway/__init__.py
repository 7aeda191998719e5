"""The HTTP gateway: stateless aiohttp instances in front of the waiting room and allocator."""
