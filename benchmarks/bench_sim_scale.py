"""`make bench` entry for the simulator scale benchmark (benchmarks/sim_scale.py, the file the issue names)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_scale import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
