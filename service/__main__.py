"""``python -m service``: the same as the ``image-factory`` command."""

import sys

from .cli import main

sys.exit(main())
