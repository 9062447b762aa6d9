"""Per-assignment trusted-check specs: one module per assignment (see grader/spec.py)."""
