"""The quality suite imports its queues as ``tests.quality.queues.<name>``: put the
repository root on sys.path (the CLI test sets PYTHONPATH the same way)."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
