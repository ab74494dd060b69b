"""Local real stack (Kafka, Mosquitto, InfluxDB), configs, example registries, docker-compose."""
