"""The site registry: regions -> sites -> hazard sources (units) -> sensors, and gateways.

    from riskwatch.registry import load_registry
    registry = load_registry("deploy/examples/registry.yaml")
    registry.sensors["GT-101"].l2_high

Per-type defaults (docs/domain.md set points) live in `types.py`, warning rules as data in `rules.py`.
"""

from riskwatch.registry.generate import generate, generate_dict
from riskwatch.registry.loader import load_registry
from riskwatch.registry.models import Gateway, Region, Sensor, Site, Unit
from riskwatch.registry.registry import Problem, Registry, RegistryError, registry_fingerprint
from riskwatch.registry.rules import DEFAULT_RULES, TAILINGS_RULES, Rule
from riskwatch.registry.types import METHANE_BY_LOCATION, TYPES, QuantityType

__all__ = [
    "DEFAULT_RULES",
    "METHANE_BY_LOCATION",
    "TAILINGS_RULES",
    "TYPES",
    "Gateway",
    "Problem",
    "QuantityType",
    "Region",
    "Registry",
    "RegistryError",
    "Rule",
    "Sensor",
    "Site",
    "Unit",
    "generate",
    "generate_dict",
    "load_registry",
    "registry_fingerprint",
]
