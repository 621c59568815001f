"""`python -m serving --registry DIR`: the same service as `edgepipe serve`, for the serving image."""

import sys

from serving.server import main

sys.exit(main())
