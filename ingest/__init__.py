"""The MQTT -> Kafka ingest bridge: validate, batch, dead-letter, spool."""
