"""riskwatch shared kernel: config, registry, levels, wire formats, errors and the CLI.

The kernel imports no broker library; components (ingest, processors, alerting, simulators, deploy)
import it, never each other.
"""

__version__ = "0.1.0"
