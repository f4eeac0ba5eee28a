"""Helpers the tests share: imported by tests and conftest files, never themselves tests."""
