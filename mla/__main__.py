"""Run the tour of the article's sections: ``python -m mla``."""

import sys

from mla.tour import main

sys.exit(main())
