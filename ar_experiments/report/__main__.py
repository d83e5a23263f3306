"""python -m ar_experiments.report: see cli.py."""

import sys

from .cli import main

sys.exit(main())
