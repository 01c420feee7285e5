"""Model scans: vulnerability tests of a model on evaluation data (see docs/scan.md)."""
