"""`python -m edgepipe` is the `edgepipe` command."""

import sys

from edgepipe.cli import main

sys.exit(main())
