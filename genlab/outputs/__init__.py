"""Outputs: samples and figures, and the report."""
