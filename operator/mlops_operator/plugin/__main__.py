"""`python -m mlops_operator.plugin`, the same as `kubectl mlops`."""

import sys

from . import main

sys.exit(main())
