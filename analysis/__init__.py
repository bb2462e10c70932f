"""Postmortem Lab: authentication and query logs into the evidence of a postmortem."""

from importlib import metadata

try:
    #: the installed distribution's version: what ``--version`` and ``manifest.json`` say
    __version__ = metadata.version("postmortem-lab")
except metadata.PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
