"""`python -m localcloud up|status|down`: see localcloud.cli."""

import sys

from localcloud.cli import main

sys.exit(main())
