"""``python -m profiles_automator`` is the ``pmr`` command."""

import sys

from .cli import main

sys.exit(main())
