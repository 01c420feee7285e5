"""The ui's server without a browser: safe by default, read-only, errors inline, pages that read
what the parts say. (tests/ui_browser_test.py drives the same pages in chromium.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError
from gitmlm.ui import app as web
from gitmlm.ui import runs_view
from gitmlm.ui.site import StaticSite, slug
from tests.helpers import XSS, git, mlm, ui_project

LOCAL = {"Host": "127.0.0.1:8765"}


@pytest.fixture
def project(repo: Path) -> dict[str, str]:
    return ui_project(repo)


def get(client: Any, url: str, **kw: Any) -> tuple[int, str]:
    reply = client.get(url, headers=kw.pop("headers", LOCAL), **kw)
    return reply.status_code, reply.get_data(as_text=True)


def test_local_server_answers_only_local_host_names_and_only_reads(
    repo: Path, project: dict[str, str]
) -> None:
    client = web.create_app(repo).test_client()
    assert get(client, "/")[0] == 200
    # A page on another site that rebinds its name to 127.0.0.1 still sends its own Host.
    assert get(client, "/", headers={"Host": "evil.example:8765"})[0] == 403
    for method in (client.post, client.put, client.delete, client.patch):
        assert method("/", headers=LOCAL).status_code == 405
    assert get(client, "/static/../app.py")[0] == 404
    assert get(client, "/static/%2e%2e/app.py")[0] == 404
    status, body = get(client, "/vendor/plotly.min.js")
    assert status == 200 and "plotly" in body[:2000].lower()
    headers = client.get("/", headers=LOCAL).headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_a_server_beyond_this_machine_needs_the_token(repo: Path, project: dict[str, str]) -> None:
    client = web.create_app(repo, token="s3cret-token").test_client()
    anywhere = {"Host": "10.1.2.3:8765"}
    assert get(client, "/", headers=anywhere)[0] == 403
    assert get(client, "/?token=wrong", headers=anywhere)[0] == 403
    first = client.get("/log?token=s3cret-token", headers=anywhere)
    assert first.status_code == 302 and first.headers["Location"] == "/log"  # token out of URL
    assert "HttpOnly" in first.headers["Set-Cookie"]
    assert get(client, "/log", headers=anywhere)[0] == 200  # the cookie carries it now


def test_runs_page_filters_orders_pages_and_shows_bad_filters_inline(
    repo: Path, project: dict[str, str]
) -> None:
    client = web.create_app(repo).test_client()
    _, body = get(client, "/?where=params.lr+%3E%3D+0.1&order=-metrics.auc")
    shown = re.findall(r'data-run="([0-9a-z]+)"', body)
    assert shown == [project["fast"], project["baseline"]]
    _, body = get(client, "/?where=metrics.acu+%3E+1")
    assert (
        "unknown column &#39;metrics.acu&#39; in --where: no run has it; did you mean metrics.auc"
        in body
    )
    _, body = get(client, "/?where=params.lr+%3E%3D")
    assert 'id="where-error"' in body and "data-run=" not in body
    _, body = get(client, "/?order=-metrics.nope")
    assert "unknown column &#39;metrics.nope&#39; in --order-by" in body
    _, body = get(client, "/?columns=params.lr&columns=metrics.auc&group=commit")
    head = body[body.index("<thead>") : body.index("</thead>")]
    assert '<tr class="group">' in body and "params.lr" in head and "params.opt" not in head
    listed = runs_view.Listings().get(Repo.open(repo))
    page2 = runs_view.runs_page(listed, order="name", page=2, per_page=2)
    assert (page2.total, page2.pages, [r["name"] for r in page2.rows]) == (3, 2, ["fast"])


def test_every_user_string_is_escaped(repo: Path, project: dict[str, str]) -> None:
    client = web.create_app(repo).test_client()
    for url in ("/", f"/run/{project[XSS]}", "/log", "/model/churn"):
        status, body = get(client, url)
        assert status == 200
        assert XSS not in body, url
    _, body = get(client, f"/compare?ids={project[XSS]}&ids={project['fast']}")
    # The compare page carries its data as JSON in a script element: no `<` may close it.
    assert "\\u003cimg src=x" in body and XSS not in body


def test_pages_read_what_the_parts_say(repo: Path, project: dict[str, str]) -> None:
    client = web.create_app(repo).test_client()
    _, body = get(client, f"/run/{project['fast']}")
    assert "val_loss" in body and "models/churn.pkl" in body and "exit code" not in body
    _, body = get(client, "/models")
    assert re.search(r">churn</a>.*?<td>v0\.0\.1</td>", body, re.S)
    _, body = get(client, "/model/churn")
    assert "metrics.auc &gt;= 0.9" in body and "churn#staging#" in body
    status, body = get(client, "/model/nope")
    assert status == 404 and "known: churn" in body
    status, body = get(client, "/run/zzzz")
    assert status == 404 and "no run with id" in body
    status, body = get(client, f"/compare?ids={project['fast']}")
    assert status == 404 and "compare 2 to 20 runs" in body
    _, body = get(client, "/log")
    assert "train churn" in body and project["fast"] in body
    status, _ = get(client, "/monitor/churn")
    assert status == 200


def test_data_page_lists_versions_and_diffs_only_recorded_ones(repo: Path) -> None:
    (repo / "mlm.toml").write_text('schema = 1\n[datasets.train]\npath = "data"\n')
    (repo / "data").mkdir()
    (repo / "data" / "a.csv").write_text("x\n1\n")
    mlm(repo, "data", "add", "train")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data v1")
    (repo / "data" / "b.csv").write_text("x\n2\n")
    mlm(repo, "data", "add", "train")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data v2")
    client = web.create_app(repo).test_client()
    _, body = get(client, "/data")
    assert 'href="/data/train"' in body
    _, body = get(client, "/data/train")
    assert "data v1" in body and "data v2" in body
    assert re.search(r"\+ added</td><td>b\.csv", body)
    status, body = get(client, "/data/train?a=HEAD~1&b=HEAD")
    assert status == 404 and "not a recorded version" in body  # no revision text reaches git


def test_report_refuses_a_folder_that_is_not_a_report(repo: Path, tmp_path: Path) -> None:
    ui_project(repo)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = mlm(repo, "report", "-o", str(out), check=False)
    assert proc.returncode != 0 and "not empty" in proc.stderr
    assert (out / "notes.txt").read_text() == "keep me"
    site = tmp_path / "site"
    mlm(repo, "report", "-o", str(site), "--where", "params.lr < 0.2")
    assert len(list((site / "run").iterdir())) == 2
    mlm(repo, "report", "-o", str(site))  # an earlier report is replaced whole
    assert len(list((site / "run").iterdir())) == 3
    proc = mlm(repo, "report", "-o", str(site), "--where", "params.nope < 1", check=False)
    assert proc.returncode != 0 and "unknown column 'params.nope'" in proc.stderr


def test_static_file_names_never_leave_the_report() -> None:
    for name in ("../../etc/passwd", "..", "a/b", "ok-name_1.2"):
        s = slug(name)
        assert "/" not in s and not s.startswith(".")
    assert slug("ok-name_1.2") == "ok-name_1.2"
    assert slug("a/b") != slug("a_b")
    assert StaticSite(1).href("model", "../x").startswith("../model/")
    with pytest.raises(MlmError):
        runs_view.compare(None, None, ["one"])  # type: ignore[arg-type]


def test_long_series_are_thinned_without_losing_a_spike() -> None:
    steps = list(range(10_000))
    values = [1.0] * 10_000
    values[7777] = 50.0
    values[10] = float("nan")
    out = runs_view.thin([float(s) for s in steps], values)
    assert len(out["step"]) <= runs_view.MAX_POINTS
    assert 50.0 in out["value"] and out["step"] == sorted(out["step"])
    assert out["value"][out["step"].index(7777.0)] == 50.0
    short = runs_view.thin([0.0, 1.0], [float("inf"), 2.0])
    assert short == {"step": [0.0, 1.0], "value": [None, 2.0]}


def test_a_run_whose_series_cannot_be_read_says_so(repo: Path, project: dict[str, str]) -> None:
    git(repo, "update-ref", "-d", "refs/notes/mlm-series")
    client = web.create_app(repo).test_client()
    _, body = get(client, f"/run/{project['fast']}")
    assert "cannot be read from refs/notes/mlm-series" in body
    _, body = get(client, f"/compare?ids={project['fast']}&ids={project['baseline']}")
    assert body.count("cannot be read from refs/notes/mlm-series") == 2


def test_run_page_links_artifacts_served_by_their_recorded_digest(
    repo: Path, project: dict[str, str]
) -> None:
    client = web.create_app(repo).test_client()
    run_id = project["baseline"]
    status, body = get(client, f"/run/{run_id}")
    url = f"/run/{run_id}/artifact/models/churn.pkl"
    assert status == 200 and f'href="{url}"' in body
    # The work tree now holds the last run's file; the link still gives this run's bytes.
    assert (repo / "models" / "churn.pkl").read_text() == "weights 2"
    reply = client.get(url, headers=LOCAL)
    assert reply.status_code == 200 and reply.get_data() == b"weights 0"
    assert reply.headers["Content-Disposition"].startswith("attachment")
    assert "filename=churn.pkl" in reply.headers["Content-Disposition"]
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    assert client.post(url, headers=LOCAL).status_code == 405
    for bad in (
        f"/run/{run_id}/artifact/models/nope.pkl",
        "/run/0000000000/artifact/models/churn.pkl",
        f"/run/{run_id}/artifact/models/../models/churn.pkl",
        f"/run/{run_id}/artifact/models/%2e%2e/mlm.toml",
        f"/run/{run_id}/artifact/../../mlm.toml",
    ):
        status, body = get(client, bad)
        assert status == 404, bad
    assert "has no artifact" in get(client, f"/run/{run_id}/artifact/models/nope.pkl")[1]


def test_an_artifact_whose_bytes_are_in_no_store_is_a_clear_404(
    repo: Path, project: dict[str, str]
) -> None:
    import shutil

    from gitmlm.storage import settings

    client = web.create_app(repo).test_client()
    shutil.rmtree(settings.cache(Repo.open(repo)).root)
    status, body = get(client, f"/run/{project['fast']}/artifact/models/churn.pkl")
    assert status == 404 and "not in the local cache" in body


def test_static_report_shows_artifacts_without_a_link(
    repo: Path, project: dict[str, str], tmp_path: Path
) -> None:
    from gitmlm.ui import report

    report.write_report(Repo.open(repo), tmp_path / "site")
    page = (tmp_path / "site" / "run" / f"{project['baseline']}.html").read_text()
    assert "models/churn.pkl" in page and "/artifact/" not in page


SCAN_TOML = """\
schema = 1

[models.churn]
path = "models/churn.skops"

[scan]
trust = ["sklearn.tree._tree.Tree"]
"""


def test_model_page_lists_the_latest_scan_findings(repo: Path) -> None:
    import numpy as np
    from skops import io as sio

    import gitmlm
    from tests.helpers import churn_frame, churn_model

    (repo / "mlm.toml").write_text(SCAN_TOML)
    train, holdout = churn_frame(400, 1), churn_frame(300, 101)
    # Noisy labels in one region: the scan's performance-bias detector names that slice.
    rng = np.random.default_rng(5)
    flip = (holdout.region == "north") & (rng.random(len(holdout)) < 0.5)
    holdout.loc[flip, "churn"] = 1 - holdout.loc[flip, "churn"]
    (repo / "models").mkdir()
    (repo / "data").mkdir()
    holdout.to_csv(repo / "data" / "noisy.csv", index=False)
    with gitmlm.start_run() as run:
        sio.dump(churn_model(train), repo / "models" / "churn.skops")
        run.log_artifact(repo / "models" / "churn.skops")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "model")
    mlm(repo, "register", "churn")
    client = web.create_app(repo).test_client()
    assert "has been scanned" in get(client, "/model/churn")[1]
    out = mlm(repo, "scan", "churn", "data/noisy.csv", "--target", "churn", check=False)
    assert out.returncode in (0, 3), out.stderr
    status, body = get(client, "/model/churn")
    section = body[body.find("Scan findings") :]
    assert status == 200 and "v0.0.1 on noisy.csv" in section, out.stderr
    # severity, detector, slice and message, escaped like every user string
    assert re.search(
        r"<td>(major|medium)</td><td>performance</td><td>region == &#34;north&#34;</td>"
        r"<td>accuracy [0-9.]+ on region",
        section,
    ), section[:2000]


def test_a_folder_artifact_downloads_as_a_zip_of_its_recorded_files(repo: Path) -> None:
    import hashlib
    import io
    import zipfile

    import gitmlm
    from gitmlm.storage import settings

    out = repo / "outputs"
    logged = {"model.bin": bytes(range(256)) * 40, "eval/report.txt": b"auc 0.9\n", "a b.txt": b""}
    for rel, data in logged.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    with gitmlm.start_run(name="folder") as run:
        run.log_artifact("outputs/")
    (out / "model.bin").write_bytes(b"overwritten later")  # the zip still has what was logged
    client = web.create_app(repo).test_client()
    status, body = get(client, f"/run/{run.id}")
    [path] = list(runs_view.Listings().get(Repo.open(repo)).by_id[run.id].artifacts)
    url = f"/run/{run.id}/artifact/{path}"
    assert status == 200 and f'href="{url}"' in body and "folder, 3 files" in body
    reply = client.get(url, headers=LOCAL)
    assert reply.status_code == 200 and reply.mimetype == "application/zip"
    assert "filename=outputs.zip" in reply.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(reply.get_data())) as z:
        assert {i.filename: z.read(i) for i in z.infolist()} == logged
    # A tampered object: one clear error page, never a partial zip.
    store = settings.cache(Repo.open(repo))
    digest = "sha256:" + hashlib.sha256(b"auc 0.9\n").hexdigest()
    victim = store.path(digest)
    victim.chmod(0o644)
    victim.write_bytes(b"auc 1.0\n")
    reply = client.get(url, headers=LOCAL)
    text = reply.get_data(as_text=True)
    assert reply.status_code == 404 and reply.mimetype == "text/html"
    assert "eval/report.txt does not match its digest" in text and "PK" not in text[:4]
    victim.unlink()  # missing, with no remote to fetch it from
    status, text = get(client, url)
    assert status == 404 and "not in the local cache" in text
