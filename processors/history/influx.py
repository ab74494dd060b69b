"""The InfluxDB sink: influxdb-client's v2 write API, synchronous, called from the historian's write thread.

InfluxDB 1.8 serves the v2-compatible API: bucket "db/retention" (or "db"), org "-", token "user:password".
"""

from __future__ import annotations

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from processors.history.writer import PointsRejected

# Statuses that mean "these points are malformed": a point with an infinite field, a time out of range,
# a field of another type than before. Auth (401/403), a missing bucket (404) and throttling (408/429) are
# configuration or load, not the points: those are retried like an outage, so no history is lost.
REFUSED = frozenset({400, 413, 422})


class InfluxSink:
    """Writes line-protocol chunks; raises PointsRejected for refused points, anything else to retry."""

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout_ms: int = 10_000) -> None:
        self.bucket, self.org = bucket, org
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        try:
            self._api.write(bucket=self.bucket, org=self.org, record=lines, write_precision=WritePrecision.MS)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status in REFUSED:
                raise PointsRejected(f"HTTP {exc.status}: {str(exc.body)[:300]}") from exc
            raise

    def close(self) -> None:
        self._client.close()
