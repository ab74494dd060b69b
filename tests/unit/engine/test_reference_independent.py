"""The reference engine checks the engine only if it shares none of its code: it may import the shared
kernel (`riskwatch`), itself and the standard library, nothing else."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import processors.engine_reference

ALLOWED = {"riskwatch", "processors.engine_reference"}


def test_the_reference_engine_imports_only_the_kernel() -> None:
    folder = Path(processors.engine_reference.__file__).parent
    found: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or name == "__future__":
                    continue
                if not any(name == ok or name.startswith(ok + ".") for ok in ALLOWED):
                    found.setdefault(path.name, set()).add(name)
    assert found == {}
