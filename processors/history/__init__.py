"""History to InfluxDB: per-sensor 1-minute aggregates and every transition, never blocking the stream."""
