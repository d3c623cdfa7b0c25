"""``python -m flightai`` is the ``flightai`` command."""

import sys

from flightai.cli import main

sys.exit(main())
