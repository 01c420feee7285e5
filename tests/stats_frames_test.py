"""Reading tables without pyarrow: the pandas CSV path gives the same frames (a subprocess in
which pyarrow cannot be imported, as on a machine without the `parquet` extra)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = """
import sys

class NoPyarrow:
    def find_spec(self, name, path=None, target=None):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("pyarrow hidden by the test")
        return None

sys.meta_path.insert(0, NoPyarrow())
from pathlib import Path
from gitmlm.stats.frames import read_frames

frames = list(read_frames(Path(sys.argv[1]), chunk_rows=4))
assert "pyarrow" not in sys.modules
print(sum(len(f) for f in frames), len(frames), list(frames[0].columns), frames[0]["b"].tolist())
"""


def test_csv_reads_through_pandas_when_pyarrow_is_missing(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(10)))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(csv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(" ", 2)[:2] == ["10", "3"]  # ten rows in chunks of at most four
    assert "['a', 'b'] ['x0', 'x1', 'x2', 'x3']" in proc.stdout
