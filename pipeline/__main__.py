"""`python -m pipeline` is the `edgepipe` command."""

import sys

from pipeline.cli import main

sys.exit(main())
