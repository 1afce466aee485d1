"""``python -m imfit_engine.worker run JOB.json | probe | install DIR``: see ``imfit_engine.worker``."""

import sys

from .main import main

sys.exit(main())
