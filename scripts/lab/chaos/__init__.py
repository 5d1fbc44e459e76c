"""Fault injection on the local stack (`make chaos`): run with `python -m scripts.lab.chaos`."""
