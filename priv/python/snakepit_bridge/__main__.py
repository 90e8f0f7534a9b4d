"""Entry point: ``python -m snakepit_bridge [--adapter package.module.Class]``."""

import os
import sys
import threading

from .server import main

if __name__ == "__main__":
    status = main()
    if threading.active_count() > 1:
        # The adapter left threads running; exit without waiting for them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
