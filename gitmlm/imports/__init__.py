"""Importing runs recorded by other tools (MLflow stores, DVC experiments) into git."""
