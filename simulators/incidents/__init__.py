"""The incident library: scenarios, their committed recordings and their outcomes (`outcome.py`); `python -m
simulators.incidents` regenerates the recordings."""
