"""``python -m radpath``: the ``radpath`` command."""

import sys

from radpath.apps.cli import main

sys.exit(main())
