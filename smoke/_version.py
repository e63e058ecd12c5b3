"""The smoke check's version, defined once; it appears in the User-Agent of every request."""

__version__ = "0.1.0"
