"""Secure multi-party computation (JR/T 0196 roles: data, computing and result parties)."""
