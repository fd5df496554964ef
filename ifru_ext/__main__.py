"""``python -m ifru_ext``: the ``ifru`` command line."""
from .cli import main

raise SystemExit(main())
