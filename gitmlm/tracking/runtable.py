"""Every run as columns, for `gitmlm.runs()`: built once per notes tip and kept in the process,
then filtered and ordered column-wise (tracking.wherecols), so a query costs what its columns
cost rather than a Python call per row and column.

The rows are `flat_row` of the runs `list_runs` lists, in its order and by its rules: of a run
on several commits the copy updated last, deleted runs left out, a running run's status worked
out at build time. A cold build parses every note; on many notes the parsing is split into
jobs that worker processes (spawned, never forked: a training script has threads) and this
process take from one queue, each running the same `runscan.scan`; this process also reads
the jobs of a worker that fails. A later build reads only the notes that changed (`Parsed`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import marshal
import operator
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from gitmlm._version import __version__
from gitmlm.core import codec, refs, where
from gitmlm.core import notes as store
from gitmlm.core.git import Repo
from gitmlm.core.records import ATTRIBUTES
from gitmlm.tracking import runscan

if TYPE_CHECKING:
    import numpy as np

PARALLEL_NOTES = 400
"""Notes from which a cold build spreads the parsing over worker processes."""
MAX_WORKERS = 4
"""Parsers of a spread build at most, this process included."""
JOB_NOTES = 100
"""Notes per job: the parsers finish within about one job of each other, and a job's own cost
(a read from the jobs pipe, a record) is lost in its notes'."""
MAX_JOBS = 1024
"""Job numbers are 4 bytes: 1,024 of them fill one 4 KiB pipe buffer, the least a pipe holds,
so this process writes them all before anyone reads, without waiting."""


def _spawn(repo: Repo, blobs: Sequence[str], jobs: int, size: int) -> Worker | None:
    root = str(Path(__file__).resolve().parents[2])  # this gitmlm, wherever it is imported from
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    try:
        # The list goes in a file: a pipe would hold this process until the worker starts.
        # The output goes to a file too: a worker never waits for this process to read it.
        with tempfile.TemporaryFile() as listed:
            listed.write("\n".join(blobs).encode() + b"\n")
            listed.seek(0)
            out = tempfile.TemporaryFile()  # noqa: SIM115 - the Worker closes it
            try:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gitmlm.tracking.runscan",
                        str(repo.gitdir),
                        str(jobs),
                        str(size),
                    ],
                    stdin=listed,
                    stdout=out,
                    stderr=subprocess.DEVNULL,
                    pass_fds=(jobs,),
                    env={**os.environ, "PYTHONPATH": path},
                )
            except OSError:
                out.close()
                raise
            return Worker(proc, out)
    except OSError:
        return None


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    taken: int = 0
    """Bytes of `out` taken so far."""

    def take(self) -> dict[int, bytes]:
        """The records it wrote whole since the last take, read while it runs (pread: the file
        offset it writes at is left alone)."""
        fd = self.out.fileno()
        size = os.fstat(fd).st_size
        if size <= self.taken:
            return {}
        got, used = runscan.records(os.pread(fd, size - self.taken, self.taken))
        self.taken += used
        return got

    def records(self) -> dict[int, bytes]:
        """Its records, once it has stopped; none from a worker that failed."""
        self.proc.wait()
        with self.out:
            return self.take() if self.proc.returncode == 0 else {}

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.out.close()


@dataclass
class Column:
    values: np.ndarray
    """Object array: the row's value, None where the row lacks the column."""
    present: np.ndarray
    """Bool array: the row has the column."""
    kind: str = ""
    """"f": every present value is a float; "s": every value is a string or None (the
    parsers found it); "": not known, tested here when asked."""
    _floats: Any = False
    _strings: bool | None = None

    def strings(self) -> bool:
        """Every value is a string or None (no NaN to rank): sorted without a test per row."""
        if self._strings is None:
            self._strings = self.kind == "s" or (
                self.kind != "f" and all(v is None or type(v) is str for v in self.values)
            )
        return self._strings

    def floats(self) -> np.ndarray | None:
        """The values as float64 (NaN where missing) when every present value is a float, else
        None: comparisons and orders on such a column need no Python call per row."""
        if self._floats is False:
            import numpy as np

            vals = self.values[self.present]
            if self.kind == "f" or (self.kind != "s" and all(type(v) is float for v in vals)):
                out = np.full(len(self.values), np.nan)
                out[self.present] = vals.astype(float)
                self._floats = out
            else:
                self._floats = None
        floats: np.ndarray | None = self._floats
        return floats


@dataclass
class Table:
    snap: store.Snapshot
    """The notes it was built from."""
    ids: list[str]
    names: list[str]
    """Every row key some run has."""
    archived: np.ndarray
    running: bool
    """Some run is running: its status may change without the notes moving."""
    columns: dict[str, Column]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(commit, problem) of each note or run that could not be read, whose runs are not here,
    as `list_runs` says them (`git mlm runs` on stderr, `gitmlm.runs()` as warnings)."""

    @property
    def tip(self) -> str | None:
        return self.snap.tip

    def column(self, name: str) -> Column:
        """A column by its row key; MLflow's start_time/end_time are derived from the stamps;
        a key no run has is a column of missing values."""
        col = self.columns.get(name)
        if col is None:
            import numpy as np

            from gitmlm.tracking import query

            n = len(self.ids)
            if name in where.DERIVED:
                stamps = self.column("started" if name == "start_time" else "ended").values
                got = (query.epoch_ms(stamp) for stamp in stamps)
                col = Column(np.fromiter(got, dtype=object, count=n), np.ones(n, bool))
            else:
                col = Column(np.full(n, None, dtype=object), np.zeros(n, bool))
            self.columns[name] = col
        return col


class Pending:
    """A build under way: workers parse while the caller loads pandas; then this process
    parses beside them, job by job (runscan), until no job is left."""

    def __init__(
        self, repo: Repo, snap: store.Snapshot, workers: int, todo: list[str] | None = None
    ) -> None:
        """`todo`: the notes to read (default: every note of `snap`)."""
        self.repo, self.snap = repo, snap
        todo = list(snap.entries.values()) if todo is None else todo
        size = max(JOB_NOTES, -(-len(todo) // MAX_JOBS))
        self.jobs = [todo[i : i + size] for i in range(0, len(todo), size)]
        self.workers: list[Worker] = []
        self.fd: int | None = None
        if workers > 1 and len(self.jobs) > 1:
            self.fd, write = os.pipe()
            try:
                numbers = b"".join(runscan.JOB.pack(i) for i in range(len(self.jobs)))
                while numbers:
                    numbers = numbers[os.write(write, numbers) :]
            finally:
                os.close(write)
            for _ in range(min(workers - 1, len(self.jobs) - 1)):
                worker = _spawn(repo, todo, self.fd, size)
                if worker is not None:
                    self.workers.append(worker)

    def result(self) -> list[tuple[runscan.Chunk, bytes | None]]:
        """Each job's runs in job order, with their bytes for the saved table (None: read after
        the workers, not to be saved). A job no worker answered for (it failed, or wrote
        nonsense) is read here."""
        done: dict[int, tuple[runscan.Chunk, bytes | None]] = {}
        # Workers' records are decoded between this process's own jobs, beside the workers,
        # and count only once their worker ended well.
        theirs: list[dict[int, tuple[runscan.Chunk, bytes | None]]] = [{} for _ in self.workers]
        if self.fd is not None:
            while (job := runscan.next_job(self.fd)) is not None:
                # Encoded now, beside the workers, for the saved table: encoding after the
                # build would take the GIL from the caller's query.
                done[job] = runscan.scan_encoded(self.repo, self.jobs[job])
                for worker, got in zip(self.workers, theirs, strict=True):
                    self._decode(worker.take(), got)
        self._close()
        for worker, got in zip(self.workers, theirs, strict=True):
            self._decode(worker.records(), got)
            if worker.proc.returncode == 0:
                done = {**got, **done}
        self.workers = []
        return [
            done.get(job) or (runscan.scan(self.repo, blobs), None)
            for job, blobs in enumerate(self.jobs)
        ]

    def _decode(
        self, records: dict[int, bytes], into: dict[int, tuple[runscan.Chunk, bytes | None]]
    ) -> None:
        for job, data in records.items():
            if job < len(self.jobs) and job not in into:
                with contextlib.suppress(Exception):  # nonsense: read here, in result()
                    chunk = runscan.decode(data)
                    # The runs of the very notes of this job, or it is read here.
                    if [blob for blob, _, _ in chunk.notes] == self.jobs[job]:
                        into[job] = (chunk, data)

    def cancel(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.workers = []
        self._close()

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_tables: dict[Path, Table] = {}
"""The last table of each repository in this process."""


@dataclass
class Parsed:
    """The chunks the last build of a repository assembled, and where each note's rows are in
    them: a build after the notes moved reads only the notes that changed (a note is a blob,
    so one whose id is unchanged holds the same runs), and any note with a running run."""

    chunks: list[runscan.Chunk]

    @functools.cached_property
    def where(self) -> dict[str, tuple[int, int, int, int, bool]]:
        """Note blob -> (chunk, note index in it, first row, end row, holds a running run);
        made when the next build asks, not by the build it describes (whose caller waits)."""
        where: dict[str, tuple[int, int, int, int, bool]] = {}
        for k, chunk in enumerate(self.chunks):
            at = 0
            for i, (blob, rows, live) in enumerate(chunk.notes):
                where[blob] = (k, i, at, at + rows, live)
                at += rows
        return where

    def reusable(self, blob: str) -> bool:
        got = self.where.get(blob)
        return got is not None and not got[4]


_parsed: dict[Path, Parsed] = {}
"""What the last build of each repository in this process read, for the next build."""


@dataclass
class Partial:
    """A build after the notes moved: the rows of unchanged notes come from `prev` (this
    process's last build, or the parts an earlier process saved for another tip), the rest are
    read by `pending`."""

    snap: store.Snapshot
    prev: Parsed | list[bytes]
    pending: Pending


def _segments(snap: store.Snapshot, sources: list[Parsed]) -> list[runscan.Chunk]:
    """Every note's rows in the order of the notes, as chunks: whole chunks where their notes
    follow each other unchanged, slices of them elsewhere."""
    runs: list[list[int]] = []  # [source, chunk, first note, end note, first row, end row]
    for blob in snap.entries.values():
        for s, source in enumerate(sources):
            got = source.where.get(blob)
            if got is not None and (s == 0 or not got[4]):
                break
        else:  # a saved file whose list of notes and parts disagree: `finish` reads the notes
            raise ValueError(f"note {blob} was not read")
        k, i, a, b, _ = got
        last = runs[-1] if runs else None
        if last is not None and last[:2] == [s, k] and last[3] == i:
            last[3], last[5] = i + 1, b
        else:
            runs.append([s, k, i, i + 1, a, b])
    out = []
    for s, k, n0, n1, r0, r1 in runs:
        chunk = sources[s].chunks[k]
        out.append(chunk if (n0, n1) == (0, len(chunk.notes)) else _slice(chunk, n0, n1, r0, r1))
    return out


def _slice(chunk: runscan.Chunk, n0: int, n1: int, r0: int, r1: int) -> runscan.Chunk:
    notes = chunk.notes[n0:n1]
    blobs = {blob for blob, _, _ in notes}
    return runscan.Chunk(
        chunk.ids[r0:r1],
        chunk.updated[r0:r1],
        chunk.deleted[r0:r1],
        chunk.archived[r0:r1],
        {name: values[r0:r1] for name, values in chunk.columns.items()},
        [error for error in chunk.errors if error[0] in blobs],
        any(live for _, _, live in notes),
        chunk.full,
        chunk.kinds,
        notes,
    )


_SAVED = "runtable-"
"""Name prefix of the saved table of one notes tip in .git/mlm/cache/ (docs/storage.md)."""
FORMAT = 6
"""Bumped whenever what `scan` makes of a note changes: a saved table names it."""


def _saved_path(repo: Repo, tip: str) -> Path:
    # The reader must be the very code (and marshal format) that wrote it.
    name = f"{_SAVED}{FORMAT}-{__version__}-{marshal.version}-{tip}.bin"
    return repo.mlm_dir / "cache" / name


@dataclass
class Saved:
    """The parts of a build of this tip, as an earlier process saved them."""

    snap: store.Snapshot
    parts: list[bytes]


def _read_saved(repo: Repo, tip: str) -> tuple[bool, list[str], list[bytes]] | None:
    """(is it this tip's, its notes, its parts) of the table saved for `tip`, else of the one
    saved last for another tip, else None. The parts are decoded later (`finish`)."""
    exact = _saved_path(repo, tip)
    try:
        others = sorted(
            exact.parent.glob(_saved_path(repo, "*").name),
            key=lambda path: path.stat().st_mtime,
            reverse=True,
        )
    except OSError:
        others = []
    for path in [exact, *others]:
        try:
            notes, parts = marshal.loads(path.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            continue  # missing, being replaced, or damaged: the notes answer
        return path == exact, notes, parts
    return None


Building: TypeAlias = Pending | Partial | Saved | Table


def start(repo: Repo, workers: int | None = None) -> Building:
    """This process's table if the notes have not moved since it was built; else a build
    (`finish` each): from this process's last build and the notes that changed since, else from
    the table an earlier process saved for this tip, else from the one saved for another tip and
    the notes not in it, else from every note. `workers`: None decides by the number of notes
    to read (and may use what was built or saved before); a number always reads every note."""
    tip = repo.ref(refs.RUNS)
    known = _tables.get(repo.common_dir)
    if known is not None and known.tip == tip and not known.running:
        return known
    snap = store.snapshot(repo, refs.RUNS)
    prev = _parsed.get(repo.common_dir)
    if prev is not None and workers is None:
        todo = [blob for blob in dict.fromkeys(snap.entries.values()) if not prev.reusable(blob)]
        if len(todo) * 2 <= len(snap.entries):  # mostly unchanged: read the rest only
            return Partial(snap, prev, Pending(repo, snap, _workers(len(todo)), todo))
    saved = _read_saved(repo, tip) if tip is not None and workers is None else None
    if saved is not None:
        exact, notes, parts = saved
        if exact:
            return Saved(snap, parts)
        read = set(notes)
        todo = [blob for blob in dict.fromkeys(snap.entries.values()) if blob not in read]
        if len(todo) * 2 <= len(snap.entries):  # another tip's, mostly the same notes
            return Partial(snap, parts, Pending(repo, snap, _workers(len(todo)), todo))
    return Pending(repo, snap, _workers(len(snap.entries)) if workers is None else workers)


def _workers(notes: int) -> int:
    """Parsers for reading this many notes, this process included."""
    if notes < PARALLEL_NOTES:
        return 1
    return min(MAX_WORKERS, len(os.sched_getaffinity(0)))


def finish(repo: Repo, building: Building) -> Table:
    if isinstance(building, Table):
        return building
    parts: list[tuple[runscan.Chunk, bytes | None]]
    if isinstance(building, Saved):
        try:
            parts = [(runscan.decode(data), None) for data in building.parts]
            read = [blob for chunk, _ in parts for blob, _, _ in chunk.notes]
            if read != list(building.snap.entries.values()):
                raise ValueError("the saved table holds other notes")
        except Exception:  # a damaged file: read the notes
            parts = Pending(repo, building.snap, 1).result()
    elif isinstance(building, Partial):
        fresh = Parsed([chunk for chunk, _ in building.pending.result()])
        try:
            prev = building.prev
            if not isinstance(prev, Parsed):
                prev = Parsed([runscan.decode(data) for data in prev])
            parts = [(chunk, None) for chunk in _segments(building.snap, [fresh, prev])]
        except Exception:  # a damaged saved file: read the notes
            parts = Pending(repo, building.snap, 1).result()
    else:
        parts = building.result()
    chunks = [chunk for chunk, _ in parts]
    table = _assemble(building.snap, chunks)
    table.skipped = _skipped(repo, building.snap, [e for c in chunks for e in c.errors])
    _tables[repo.common_dir] = table
    _parsed[repo.common_dir] = Parsed(chunks)
    raw = [data for _, data in parts]
    live = any(chunk.live for chunk, _ in parts)
    if table.tip is not None and all(raw) and not live and not table.running:
        # Written beside the caller's query, by a thread (file writes let go of the GIL).
        path = _saved_path(repo, table.tip)
        notes = [blob for chunk in chunks for blob, _, _ in chunk.notes]
        threading.Thread(target=_save, args=(path, marshal.dumps((notes, raw)))).start()
    return table


def _skipped(
    repo: Repo, snap: store.Snapshot, problems: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The build's (note blob, problem) as list_runs says them: by commit, in note order, the
    notes that do not parse first, then the run tables that do not read."""
    if not problems:
        return []
    by_blob: dict[str, list[str]] = {}
    for blob, problem in problems:
        by_blob.setdefault(blob, []).append(problem)
    unreadable: list[tuple[str, str]] = []
    bad_runs: list[tuple[str, str]] = []
    for commit, blob in snap.entries.items():
        said = by_blob.get(blob)
        if not said:
            continue
        # A blob on several commits may have been read (and its problems kept) more than once;
        # within one note no problem is said twice (each names its run).
        said = list(dict.fromkeys(said))
        try:
            store.parse_note(repo, blob)
        except codec.NoteError:
            unreadable += [(commit, problem) for problem in said]
        else:
            bad_runs += [(commit, problem) for problem in said]
    return unreadable + bad_runs


def _save(path: Path, data: bytes) -> None:
    """Keep the table of this tip (only): a new process reads it instead of the notes."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        for old in path.parent.glob(f"{_SAVED}*.bin"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only .git still answers, just slower next time


@contextlib.contextmanager
def started(repo: Repo) -> Iterator[Building]:
    """`start`, with the build cancelled if the caller fails before `finish` (imports it made
    meanwhile, a bad --where): no worker is left behind."""
    building = start(repo)
    try:
        yield building
    except BaseException:
        cancel(building)
        raise


def cancel(building: Building) -> None:
    """Stop a build that will not be finished (its caller failed): no worker is left behind."""
    if isinstance(building, Pending):
        building.cancel()
    elif isinstance(building, Partial):
        building.pending.cancel()


def load(repo: Repo, workers: int | None = None) -> Table:
    return finish(repo, start(repo, workers))


def _assemble(snap: store.Snapshot, chunks: list[runscan.Chunk]) -> Table:
    import numpy as np

    is_not: Any = np.frompyfunc(operator.is_not, 2, 1)
    ids = list(itertools.chain.from_iterable(c.ids for c in chunks))
    updated = list(itertools.chain.from_iterable(c.updated for c in chunks))
    # list_runs' choice among copies of a run: the first copy, unless a later one was updated
    # later; then deleted runs are left out, and the rest go newest id first.
    deleted = list(itertools.chain.from_iterable(c.deleted for c in chunks))
    if len(set(ids)) == len(ids):  # the usual case: no run on two commits
        chosen = [i for i, gone in enumerate(deleted) if not gone]
    else:
        best: dict[str, int] = {}
        for i, rid in enumerate(ids):
            old = best.get(rid)
            if old is None or updated[i] > updated[old]:
                best[rid] = i
        chosen = [i for i in best.values() if not deleted[i]]
    # Ids are unique now, so any sort gives the one order; numpy compares them by code point,
    # as Python does.
    chosen_ids = np.array([ids[i] for i in chosen], dtype=str)
    keep = np.asarray(chosen, dtype=np.intp)[np.argsort(chosen_ids)[::-1]]
    n = len(ids)
    names = list(dict.fromkeys(itertools.chain.from_iterable(c.columns for c in chunks)))
    columns: dict[str, Column] = {}
    for name in names:
        parts = (c.columns.get(name) or itertools.repeat(None, len(c.ids)) for c in chunks)
        values = np.fromiter(itertools.chain.from_iterable(parts), dtype=object, count=n)
        # An attribute is in every row, though it may be None (ended, branch); a present data
        # value never is (TOML has no null), so only a chunk with filler needs a look (is_not
        # runs per element in C).
        if name in ATTRIBUTES:
            present = np.ones(n, bool)
        else:
            present = np.empty(n, bool)
            at = 0
            for c in chunks:
                end = at + len(c.ids)
                if name not in c.columns:
                    present[at:end] = False
                elif c.full:
                    present[at:end] = True
                else:
                    present[at:end] = is_not(values[at:end], None).astype(bool)
                at = end
        kinds = {c.kinds.get(name, "") for c in chunks if name in c.columns}
        kind = kinds.pop() if len(kinds) == 1 else ""
        columns[name] = Column(values[keep], present[keep], kind)
    archived = np.fromiter(itertools.chain.from_iterable(c.archived for c in chunks), bool, n)[keep]
    kept_ids = np.array(ids, dtype=object)[keep].tolist()  # in C: a comprehension takes 6x
    running = bool(len(keep)) and bool((columns["status"].values == "running").any())
    return Table(snap, kept_ids, names, archived, running, columns)
