"""Opt-in studies: scripts run by an explicit command, never by `dvc repro` (docs/augmentation.md)."""
