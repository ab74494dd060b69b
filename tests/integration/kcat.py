"""kcat, the librdkafka command-line client, logged in as one Kafka account: a client that shares no code
with riskwatch. The password goes in a 0600 config file (`-F`), never on the command line."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from riskwatch.kafka_access import KafkaAccess
from riskwatch.secrets import write_private


def kcat(
    access: KafkaAccess | None, bootstrap: str, *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run `kcat -b bootstrap ARGS` as `access` (None: no credentials at all, plain TCP)."""
    path = shutil.which("kcat")
    assert path, "kcat is not installed; ./dev setup installs it (Debian kcat)"
    with tempfile.TemporaryDirectory(prefix="rw-kcat-") as tmp:
        config = Path(tmp) / "kcat.conf"
        write_private(config, access.kcat_config() if access else f"bootstrap.servers={bootstrap}\n")
        argv = [path, "-F", str(config), "-b", bootstrap, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
