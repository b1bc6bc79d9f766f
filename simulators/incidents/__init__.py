"""Incident scenarios and their committed recordings; `python -m simulators.incidents` regenerates them."""
