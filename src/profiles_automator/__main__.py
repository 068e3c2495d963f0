"""``python -m profiles_automator`` is the ``pmr`` command."""

import sys

from profiles_automator.cli import main

sys.exit(main())
