"""A log-space product t-norm fuzzy logic, and weak-label constraints expressed in it."""
