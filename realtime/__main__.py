"""``python -m realtime`` is the ``stylecast`` command."""

import sys

from realtime.cli import main

sys.exit(main())
