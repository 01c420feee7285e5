"""Hook modules: one per hook id, each a pure check plus `main(argv) -> int`."""
