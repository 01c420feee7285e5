"""Interfaces that speak other tools' APIs over gitmlm (MLflow's fluent tracking API)."""
