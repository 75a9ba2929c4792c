"""Cryptographic building blocks (pure math: no I/O, randomness passed in)."""
