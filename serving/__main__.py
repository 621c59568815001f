"""`python -m edgepipe.serving --registry DIR`: the same service as `edgepipe serve`, for the
serving image."""

import sys

from edgepipe.serving.server import main

sys.exit(main())
