"""Offline real-time voice assistant front-end."""

__version__ = "0.1.0"
