"""One module per detector; each takes a `Context` and returns findings (see docs/scan.md)."""
