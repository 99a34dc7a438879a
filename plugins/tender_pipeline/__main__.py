"""Entry point for ``python -m tender_pipeline``."""

import sys

from tender_pipeline.cli import main

sys.exit(main())
