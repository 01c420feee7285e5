from __future__ import annotations

from gitmlm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
