"""tests/perf reuses the engine tests' fixtures (bundles, backends, photos)."""
from __future__ import annotations

from ..engine.conftest import model_backend, model_bundle, synthetic_backend, synthetic_bundle  # noqa: F401
