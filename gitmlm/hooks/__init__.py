"""Hook modules: one per hook id, each a pure check plus `main(argv) -> int`.

Each module is a console script for the pre-commit framework (.pre-commit-hooks.yaml). Without
the framework, the shims in the top-level hooks/ folder (installed by `git mlm install-hooks`)
only run `git mlm hook STAGE "$@"`, which runs the modules listed below for that git hook, then
the hook that was installed before gitmlm's (kept as `STAGE.pre-gitmlm`). Adding a check is one
line below; a new stage also gets its shim from `git mlm install-hooks` (and `hooks/`).
"""

from __future__ import annotations

ARGS = "$@"
"""In a check's arguments: where git's own arguments for the hook go."""

STAGES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "pre-commit": (
        ("gitmlm.hooks.checkpoint", ()),
        ("gitmlm.hooks.data", ()),
    ),
    "post-commit": (("gitmlm.hooks.post_commit", ()),),
    "post-merge": (("gitmlm.hooks.post_commit", ("--since", "ORIG_HEAD")),),
    "post-rewrite": (("gitmlm.hooks.post_commit", ("--rewritten", ARGS)),),
}
"""git hook name -> (module, arguments) run in order; every check runs, the first failure's
exit code is the hook's."""

STDIN_STAGES = frozenset({"pre-push", "post-rewrite", "reference-transaction"})
"""Hooks git feeds on stdin: read once, handed to every check and to the chained hook."""
