"""The server-to-server protocol. Its core (every module here so far) is pure: no I/O
except key files in ``keys.py``, no clock, no network, no storage."""

__all__: list[str] = []
