"""The InfluxDB sink: influxdb-client's v2 write API, synchronous, called from the writer's thread.

InfluxDB 1.8 serves the v2-compatible API: bucket "db/retention" (or "db"), org "-", token "user:password".
"""

from __future__ import annotations

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS


class InfluxSink:
    """Writes line-protocol chunks; raises on any failure so the writer retries."""

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout_ms: int = 10_000) -> None:
        self.bucket, self.org = bucket, org
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        self._api.write(bucket=self.bucket, org=self.org, record=lines, write_precision=WritePrecision.MS)

    def close(self) -> None:
        self._client.close()


class NullSink:
    """History switched off (no --influx-url): points are accepted and discarded."""

    def write(self, lines: list[str]) -> None:
        pass

    def close(self) -> None:
        pass
