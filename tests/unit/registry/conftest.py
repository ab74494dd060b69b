"""Factories for registry documents: a small valid base that each test breaks in one place."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

BASE = """
version: 1
regions:
  - {id: R1, name: region one}
  - {id: R2}
sites:
  - id: S1
    region: R1
    name: chemical works
    industry: hazardous_chemicals
    static_score: 82
    gateways: [{id: G1}, {id: G2}]
    units:
      - id: U1
        kind: tank_farm
        gateway: G1
        sensors:
          - {id: GT-101, type: flammable_gas}
          - {id: CO-101, type: co}
          - {id: PT-101, type: pressure, range: [0, 2500], l1_high: 1600, l2_high: 1770}
  - id: S2
    region: R2
    industry: coal_mine
    gateways: [{id: G3}]
    units:
      - id: U2
        kind: working_face
        sensors:
          - {id: CH4-1, type: methane, location: longwall_face}
          - {id: CH4-2, type: methane, location: face_return_airway}
"""


@pytest.fixture
def base_doc() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(BASE))


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(doc: dict[str, Any], name: str = "registry.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        return path

    return write
