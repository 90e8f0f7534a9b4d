"""Unit and end-to-end tests of snakepit_bridge.

Run from the repository root:
    python3 -m unittest discover -s priv/python/tests -t priv/python
"""
