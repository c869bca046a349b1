"""Optimisation path: fit one head (shared shape/expression) and per-view cameras to N photos."""
