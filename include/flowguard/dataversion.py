"""Data versions with DVC: what an ingest run wrote and what a training run read.

``FLOWGUARD_HOME`` is a DVC repository without Git (``dvc init --no-scm``). Three folders of
it are tracked as DVC outputs: the landing files (when ``FLOWGUARD_LANDING_DIR`` lies inside
the home; DVC 3 has no outputs outside its repository), the validated lake (flows and host
windows, the Feast offline source) and the quarantine. A *data version* is the set of their
DVC directory hashes (``<md5>.dir``), pushed to a DVC remote: ``FLOWGUARD_DVC_REMOTE`` (any
DVC remote URL, such as ``s3://bucket/flowguard``; default a local folder,
``$FLOWGUARD_HOME/dvc-remote``). The ingest DAG records the version after each day it
writes; the training DAG records the version it built its training set from in the run's
lineage (``lineage.data_version``), and :func:`checkout` brings that version back into any
folder, which ``flowguard reproduce`` uses to retrain a registered model on its exact data.

``FLOWGUARD_DVC``: ``auto`` (default: version when DVC is installed, else say why not and go
on), ``on`` (a failure to version fails the task) or ``off``. Nothing about DVC is required
for the embedded demo: with ``auto`` a failure is logged and recorded as the reason.

Cost: DVC keeps a copy of each tracked file in its cache (``.dvc/cache``) and one in the
remote; unchanged files are not hashed again (DVC's state database). Versioning a lake
partition while another process rewrites it would record a mix; the ingest DAG writes one day
at a time (``max_active_runs=1``) and every DVC call here holds ``locks/dvc.lock``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowguard.locks import file_lock

log = logging.getLogger(__name__)

REMOTE_NAME = "flowguard"
LOCK_WAIT_SECONDS = 600.0


class DataVersionError(RuntimeError):
    """A DVC step failed; the message says which command and what DVC printed."""


def mode() -> str:
    value = (os.environ.get("FLOWGUARD_DVC") or "auto").strip().lower()
    if value not in {"auto", "on", "off"}:
        raise DataVersionError(f"FLOWGUARD_DVC={value!r}: use auto, on or off")
    return value


def remote_url(home: Path) -> str:
    return os.environ.get("FLOWGUARD_DVC_REMOTE") or str(Path(home).resolve() / "dvc-remote")


def available() -> bool:
    return importlib.util.find_spec("dvc") is not None


def _repo(home: Path) -> Any:
    """DVC's Python API (``dvc.repo.Repo``) on ``home``: in-process, one import per process
    (about half the time of two ``dvc`` commands, each paying the interpreter and imports)."""
    from dvc.repo import Repo

    return Repo(str(home))


def _failed(step: str, home: Path, exc: Exception) -> DataVersionError:
    return DataVersionError(f"DVC {step} in {home} failed: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One DVC operation at a time per home (ingest and training may overlap)."""
    path = Path(home) / "locks" / "dvc.lock"
    with file_lock(path, LOCK_WAIT_SECONDS, lambda: DataVersionError(
            f"{path} held for over {LOCK_WAIT_SECONDS:.0f} s by another flowguard process: is a "
            "DVC step stuck?"), poll=0.5):
        yield


def ensure_repo(home: Path, remote: str) -> None:
    """``dvc init --no-scm`` once, with ``remote`` as the default remote (kept up to date)."""
    from dvc.repo import Repo

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    try:
        if not (home / ".dvc").is_dir():
            Repo.init(str(home), no_scm=True).close()
        with _repo(home) as repo, repo.config.edit() as conf:
            conf["core"]["remote"] = REMOTE_NAME
            conf["core"]["analytics"] = False
            conf["remote"][REMOTE_NAME] = {"url": remote}
    except Exception as exc:  # DVC raises its own hierarchy (DvcException) and OSError
        raise _failed("init", home, exc) from exc


def tracked_folders(home: Path, landing_dir: Path | None = None) -> dict[str, Path]:
    """The folders versioned in ``home`` that exist: lake, quarantine and landing (inside)."""
    home = Path(home).resolve()
    folders = {"lake": home / "lake", "quarantine": home / "quarantine"}
    landing = Path(landing_dir).resolve() if landing_dir else home / "landing"
    if landing.is_relative_to(home):
        folders["landing"] = landing
    return {name: path for name, path in folders.items() if path.is_dir()}


def _out_hash(dvc_file: Path) -> str:
    import yaml

    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or []
    if not outs or not outs[0].get("md5"):
        raise DataVersionError(f"{dvc_file} names no output hash")
    return str(outs[0]["md5"])


def snapshot(home: Path, landing_dir: Path | None = None) -> dict[str, Any]:
    """Version the tracked folders now: ``dvc add`` + ``dvc push``. Returns the version:
    ``{"tool": "dvc", "remote": url, "outs": {relative path: "<md5>.dir"}, ...}``."""
    home = Path(home).resolve()
    remote = remote_url(home)
    folders = tracked_folders(home, landing_dir)
    if not folders:
        raise DataVersionError(f"nothing to version in {home}: no lake, quarantine or landing "
                               "folder yet (run ingest first)")
    started = time.perf_counter()
    with _locked(home):
        ensure_repo(home, remote)
        targets = [str(p.relative_to(home)) for p in folders.values()]
        try:
            with _repo(home) as repo:
                repo.add([str(home / t) for t in targets])  # DVC resolves against the cwd
                repo.push([str(home / f"{t}.dvc") for t in targets])
        except Exception as exc:
            raise _failed(f"add + push of {', '.join(targets)}", home, exc) from exc
        outs = {t: _out_hash(home / f"{t}.dvc") for t in targets}
    version = {"tool": "dvc", "remote": remote, "outs": outs,
               "seconds": round(time.perf_counter() - started, 2)}
    log.info("data version %s (remote %s, %.1f s)", outs, remote, version["seconds"])
    return version


def record(home: Path, landing_dir: Path | None = None) -> dict[str, Any]:
    """:func:`snapshot` as the DAGs call it: with ``FLOWGUARD_DVC=auto`` a missing DVC or a
    failed step is logged and returned as ``{"skipped": reason}`` instead of failing the task."""
    chosen = mode()
    if chosen == "off":
        return {"skipped": "FLOWGUARD_DVC=off"}
    if not available():
        if chosen == "on":
            raise DataVersionError("FLOWGUARD_DVC=on but DVC is not installed in this runtime "
                                   "(it is in requirements.txt: run scripts/bootstrap.sh)")
        return {"skipped": "DVC is not installed in this runtime"}
    try:
        return snapshot(home, landing_dir)
    except DataVersionError as exc:
        if chosen == "on":
            raise
        log.warning("data not versioned (FLOWGUARD_DVC=auto): %s", exc)
        return {"skipped": str(exc)}


def checkout(version: dict[str, Any], dest: Path, remote: str | None = None) -> dict[str, Path]:
    """Bring a recorded data version into ``dest`` (a new or scratch home) from its remote.

    Writes one ``.dvc`` file per output with the recorded hash and runs ``dvc pull``; DVC
    checks every file against its hash. Returns the folders written.
    """
    outs = (version or {}).get("outs") or {}
    if not outs:
        raise DataVersionError(f"no DVC outputs in the recorded data version {version!r}"
                               + (f" ({version['skipped']})" if version.get("skipped") else ""))
    dest = Path(dest).resolve()
    with _locked(dest):
        ensure_repo(dest, remote or version["remote"])
        for path, digest in outs.items():
            target = dest / path
            if target.exists():
                raise DataVersionError(f"{target} exists: check out into an empty folder")
            (dest / f"{path}.dvc").parent.mkdir(parents=True, exist_ok=True)
            (dest / f"{path}.dvc").write_text(
                f"outs:\n- md5: {digest}\n  hash: md5\n  path: {Path(path).name}\n")
        try:
            with _repo(dest) as repo:
                repo.pull([str(dest / f"{p}.dvc") for p in outs])
        except Exception as exc:
            raise _failed(f"pull from {remote or version['remote']}", dest, exc) from exc
    return {path: dest / path for path in outs}
