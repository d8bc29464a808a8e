"""Errors of the storage layer. Code above storage sees these, never SQLAlchemy's.

    StorageError
    ├── StorageConfigError   the database URL or schema state is unusable
    ├── DatabaseUnavailable  the database cannot be reached or is busy: retry later
    ├── NotFound             a named row does not exist
    └── AlreadyExists        a unique name is taken
"""

from __future__ import annotations

__all__ = ["AlreadyExists", "DatabaseUnavailable", "NotFound", "StorageConfigError", "StorageError"]


class StorageError(Exception):
    """Base of every storage error."""


class StorageConfigError(StorageError):
    pass


class DatabaseUnavailable(StorageError):
    pass


class NotFound(StorageError):
    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what} {key!r} does not exist")
        self.what = what
        self.key = key


class AlreadyExists(StorageError):
    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what} {key!r} already exists")
        self.what = what
        self.key = key
