"""`riskwatch stack`: real Kafka (KRaft), Mosquitto and InfluxDB on loopback, for development and tests."""

from deploy.stack.stack import Stack, StackInfo, add_bridge_accounts, add_gateways, ensure_topics

__all__ = ["Stack", "StackInfo", "add_bridge_accounts", "add_gateways", "ensure_topics"]
