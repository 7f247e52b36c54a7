"""``python -m tlcourse doctor`` / ``python -m tlcourse fetch NAME|--all``."""

import sys

from tlcourse.cli import main

sys.exit(main())
