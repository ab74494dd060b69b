from __future__ import annotations

import pytest

from processors.engine_port import load_engine
from processors.state.sites import SiteIndex
from riskwatch.registry import Registry
from tests.integration.processors.harness import REGISTRY_YAML


@pytest.fixture(scope="session")
def registry() -> Registry:
    import yaml

    return Registry.from_dict(yaml.safe_load(REGISTRY_YAML), source="<test>")


@pytest.fixture
def index(registry: Registry) -> SiteIndex:
    return SiteIndex(registry)


@pytest.fixture(scope="session")
def fake_engine():  # type: ignore[no-untyped-def]
    return load_engine("tests.unit.processors.fake_engine")
