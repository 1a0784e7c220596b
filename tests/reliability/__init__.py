"""Reliability tests (issue 5): bad input, interruptions and faults lose nothing."""
