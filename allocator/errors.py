"""Exceptions of the allocator package."""


class AllocatorError(Exception):
    """Base of every error the allocator raises."""


class InvariantError(AllocatorError):
    """Internal state broke an invariant (a bug, never a consequence of input)."""


class RebuildError(AllocatorError):
    """A partition's state could not be rebuilt from its log."""


class SnapshotError(AllocatorError):
    """Snapshot bytes could not be read (corrupt, foreign or of another version)."""
