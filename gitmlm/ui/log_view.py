"""What the Log page shows: the commit graph with runs beneath commits, like `git mlm log`."""

from __future__ import annotations

import time
from typing import Any

from gitmlm.core.git import Repo
from gitmlm.tracking import logview

LIMIT = 200


def log_page(repo: Repo, limit: int = LIMIT) -> dict[str, Any]:
    if repo.head().commit is None:
        return {"entries": [], "limit": limit}
    decorations = repo.decorations()
    out = []
    for entry in logview.entries(repo, [], limit):
        c = entry.commit
        out.append(
            {
                "oid": c.oid,
                "parents": list(c.parents),
                "merge": len(c.parents) > 1,
                "author": c.author,
                "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(c.time + c.offset * 60)),
                "subject": c.message.strip().splitlines()[0] if c.message.strip() else "",
                "refs": decorations.get(c.oid, []),
                "runs": entry.runs,
                "snapshots": entry.snapshots,
            }
        )
    return {"entries": out, "limit": limit}
