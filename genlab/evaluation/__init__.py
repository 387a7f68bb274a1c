"""Evaluation: the evaluator (the yardstick), sample-quality metrics, detectors, ELBO."""
