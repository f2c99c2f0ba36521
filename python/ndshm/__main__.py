"""python -m ndshm: the ndshm command."""

import sys

from .cli import main

sys.exit(main())
