"""Wire formats: the only contract between components (gateway JSON, Kafka batch codec, transitions)."""
