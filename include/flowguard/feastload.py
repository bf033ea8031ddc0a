"""Import Feast without typeguard's import-time instrumentation.

Feast 0.67 decorates its definition classes (``FeatureView``, ``Entity``, ``FileSource``,
``OnDemandFeatureView``...) with typeguard 4's ``@typechecked``, which re-reads and recompiles
each decorated class's source when the module is imported: about half of Feast's import
time (5.4 of 10.7 s at load 4 on the 2-core machine, 2026-12-01), paid again by every
Airflow task process that opens the feature store. Nothing else in the platform runtime
uses typeguard, and Feast never relies on its errors (no ``except TypeCheckError``): the
decorator only checks the arguments of those constructors at run time. flowguard builds
its objects from one fixed repo (``feature_repo/definitions.py``), whose definitions a test
parses with the checks on (``tests/test_feast_typechecks.py``).

``FLOWGUARD_FEAST_TYPECHECKS=on`` keeps Feast's checks (while changing definitions).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from types import ModuleType
from typing import Any

from flowguard.config import feast_typechecks

log = logging.getLogger(__name__)

# Modules with ``@typechecked`` classes that Feast imports lazily, when a store of the
# embedded profile first reads or writes or a repo is parsed: loaded here, uninstrumented too.
LAZY_MODULES = (
    "feast.repo_operations",
    "feast.infra.offline_stores.file_source",
)
_lock = threading.Lock()


def _unchecked(target: Any = None, **_: Any) -> Any:
    """``typechecked`` as a pass-through, bare (``@typechecked``) or called (``@typechecked()``)."""
    return target if target is not None else (lambda inner: inner)


def load_feast() -> ModuleType:
    """``import feast`` (and :data:`LAZY_MODULES`), without instrumentation unless
    ``FLOWGUARD_FEAST_TYPECHECKS=on``. A Feast already imported is returned as it is."""
    if "feast" in sys.modules or feast_typechecks():
        import feast

        return feast
    import typeguard

    with _lock:  # the decorator is swapped for the import only, then put back
        saved = typeguard.typechecked
        typeguard.typechecked = _unchecked
        try:
            import feast

            for name in LAZY_MODULES:
                try:
                    importlib.import_module(name)
                except ImportError as exc:  # an optional extra: Feast imports it when needed
                    log.debug("feast module %s not loaded: %s", name, exc)
        finally:
            typeguard.typechecked = saved
    return feast
