"""The alert state machine (ISA-18.2 / OPC UA Part 9 states), shelving and maintenance windows."""
