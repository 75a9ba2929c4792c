"""Compute backends: where bulk work inside one party runs (local pools now, Ray later)."""

from privfin.compute.backend import ComputeBackend, LocalBackend, SerialBackend, ThreadBackend

__all__ = ["ComputeBackend", "LocalBackend", "SerialBackend", "ThreadBackend"]
