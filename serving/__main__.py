"""`python -m serving`: the model server on its own, with TF Serving's flags (`serving.main`)."""

import os
import sys
import warnings

if "--verbose" not in sys.argv:
    # TensorFlow's C++ side and Google's client libraries print their start-up chatter when imported,
    # before logging is configured: silenced here, before those imports.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

from serving.main import main

sys.exit(main())
