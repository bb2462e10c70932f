"""The report: ``postmortem report`` runs the notebooks through papermill; :class:`Run`
conducts one report inside the kernel (load, analyse, chart, write); the draft, the charts,
the manifest, the parameters and ``verify`` around them.

This is the wing's door: the names below are what others (the command line, the notebooks)
may use. They are imported when first used, so that ``postmortem --help`` or ``postmortem
load`` does not import pandas, matplotlib and papermill.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: each public name → the module of this wing that defines it
_DOOR = {
    "Run": "run",
    "ProgressLine": "run",
    "main": "command",
    "verify_main": "verify",
    "PARAMETERS": "params",
    "INPUTS": "params",
    "Param": "params",
    "params_of": "params",
    "read_config": "params",
    "charts": None,
    "draft": None,
    "folder": None,
}

__all__ = sorted(_DOOR)


def __getattr__(name: str) -> Any:
    if name not in _DOOR:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _DOOR[name]
    if module is None:
        return import_module(f"{__name__}.{name}")
    return getattr(import_module(f"{__name__}.{module}"), name)
