"""The studies: each one's run (where it has a command of its own) and its sweep adapter.

STUDIES is the registry of sweep adapters: a new study is one adapter module (a SweepStudy subclass
instance named STUDY) and one line here.
"""
from __future__ import annotations

from importlib import import_module

from superlens.studies.base import SweepStudy

STUDIES = {
    "toy": "superlens.studies.toy",
    "tms": "superlens.studies.tms",
    "active": "superlens.studies.active",
    "sae-validation": "superlens.studies.sae_validation",
}


def sweep_study(name: str) -> SweepStudy:
    """The sweep adapter of study `name` (imported on first use: each pulls in its own stack)."""
    if name not in STUDIES:
        from superlens.errors import ConfigError

        raise ConfigError(f"sweep spec: study = {name!r}, expected one of {', '.join(STUDIES)}")
    return import_module(STUDIES[name]).STUDY
