"""Paths built from names a person or Airflow chooses (run ids, window names, Params).

Airflow's default ``allowed_run_id_pattern`` accepts a run id of ``..``; used as a folder
name it would make a task stage into, and then delete, its parent. Every such name goes
through :func:`confined`: it must be one path component that, resolved, stays inside its
root; anything else is refused with what to do instead.
"""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._@=-]")


class UnsafePath(ValueError):
    """A name would lead outside the folder it is meant for."""


def component(name: str, what: str = "run id") -> str:
    """``name`` as one safe folder name: characters outside ``[A-Za-z0-9._@=-]`` (Airflow's
    ``:`` and ``+``, slashes) become ``_``; a name of dots only is refused."""
    safe = _UNSAFE.sub("_", str(name))
    if not safe.strip("."):
        raise UnsafePath(f"{what} {name!r} cannot name a folder (it would point at a parent "
                         f"folder); trigger the run with another {what}")
    return safe


def confined(root: Path, name: str, what: str = "run id") -> Path:
    """``root / component(name)``, checked to resolve inside ``root``."""
    base = Path(root).resolve()
    path = (base / component(name, what)).resolve()
    if path == base or not path.is_relative_to(base):
        raise UnsafePath(f"{what} {name!r} leads outside {base}; trigger the run with another "
                         f"{what}")
    return path
