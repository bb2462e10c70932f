"""Postmortem Lab: authentication and query logs into the evidence of a postmortem."""

__version__ = "0.1.0"
