"""Data: fetch, validate and normalize the dataset, and load the processed arrays."""
