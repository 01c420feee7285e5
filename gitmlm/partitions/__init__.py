"""Datasets of many files (a folder, a glob, an object store prefix), profiled here or on Spark."""
