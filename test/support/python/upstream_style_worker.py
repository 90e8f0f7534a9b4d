"""The script of an upstream-style adapter (its `script_path/0`): the pool runs
`python3 upstream_style_worker.py ARGS...`, and this runs the bridge with those arguments.
Needs `priv/python` and this directory on PYTHONPATH."""

import sys

from snakepit_bridge.server import main

if __name__ == "__main__":
    sys.exit(main())
