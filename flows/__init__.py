"""Bytewax dataflows: wiring only.  Each step has a step_id and a comment with its output."""
