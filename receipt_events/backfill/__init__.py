"""Adopting an existing table: its current items become events (SPEC §11)."""
