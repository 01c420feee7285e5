"""The worker of a parallel runtable build: `python -m gitmlm.tracking.runscan GITDIR`, the
note blob ids on stdin, a pickled runtable.Chunk on stdout."""

from __future__ import annotations


def main() -> None:
    from gitmlm.tracking import runtable

    runtable.worker()


if __name__ == "__main__":
    main()
