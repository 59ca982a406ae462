"""``python -m wsss.apps.demo``: the demo's command line (:func:`wsss.apps.demo.cli.main`)."""

import sys

from wsss.apps.demo.cli import main

sys.exit(main())
