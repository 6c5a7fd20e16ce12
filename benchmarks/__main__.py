"""`python -m benchmarks [--quick] [--out FILE] [--dir DIR]` (what `python3 dev.py bench` runs)."""

import sys

from benchmarks.runner import main

if __name__ == "__main__":
    sys.exit(main())
