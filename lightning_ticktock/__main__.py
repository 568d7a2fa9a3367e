"""``python -m lightning_ticktock`` is the ``ticktock`` command."""

import sys

from .cli import main

sys.exit(main())
