"""Helpers shared by the tests (each module here serves one area)."""
