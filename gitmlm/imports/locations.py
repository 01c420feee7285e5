"""Reading another tool's artifact locations: a folder on this disk (a path or `file:` URI) or
an S3 prefix (`s3://bucket/prefix`, through fsspec/s3fs with the storage part's settings).

S3 endpoint and options: a storage remote of mlm.toml on the same bucket lends its
`endpoint_url` and options; else MLflow's own `MLFLOW_S3_ENDPOINT_URL`; else AWS's
(`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`). Credentials come from the environment, as for
storage remotes. Any other scheme is one clear error naming what is supported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gitmlm.core.git import Repo
from gitmlm.errors import MlmError

Files = dict[str, Callable[[], bytes]]
"""File name (relative, '/'-separated) -> a reader of its bytes, called only when written."""
SUPPORTED = "a local path, file:// or s3://bucket/prefix"


class Locations:
    """Lists and reads artifact locations; one S3 connection per bucket."""

    def __init__(self, repo: Repo | None = None, *, tool: str = "MLflow") -> None:
        self.repo = repo
        self.tool = tool
        self._fs: dict[str, Any] = {}

    def files(self, uri: str, what: str) -> Files:
        """Every file below `uri` (a folder, or one file: its own name); {} when nothing is
        there. `what` names the location in errors ("run 3f2a… artifacts")."""
        parsed = urlparse(uri)
        if parsed.scheme in ("", "file"):
            return _local(Path(unquote(parsed.path) if parsed.scheme == "file" else uri))
        if parsed.scheme in ("s3", "s3a"):
            return self._s3(parsed.netloc, parsed.path.strip("/"), uri, what)
        raise MlmError(
            f"{what}: artifact location {uri} cannot be read: {self.tool} artifacts are read "
            f"from {SUPPORTED}; import without them with --no-artifacts"
        )

    # --- S3 -----------------------------------------------------------------------------------

    def _s3(self, bucket: str, prefix: str, uri: str, what: str) -> Files:
        fs = self._connect(bucket, what)
        root = f"{bucket}/{prefix}".rstrip("/")
        with self._guard(what, uri):
            found = fs.find(root)
        out: Files = {}
        for key in sorted(found):
            name = key[len(root) + 1 :] if key != root else key.rsplit("/", 1)[-1]

            def read(key: str = key) -> bytes:
                with self._guard(what, uri):
                    return bytes(fs.cat_file(key))

            out[name] = read
        return out

    def _connect(self, bucket: str, what: str) -> Any:
        if bucket in self._fs:
            return self._fs[bucket]
        from gitmlm.storage import settings, transfer

        endpoint = None
        options: dict[str, Any] = {}
        if self.repo is not None and self.repo.root is not None:
            for remote in settings.remotes(self.repo)[0].values():
                if urlparse(remote.url).scheme in ("s3", "s3a") and (
                    urlparse(remote.url).netloc == bucket
                ):
                    endpoint, options = remote.endpoint_url, dict(remote.options)
                    break
        endpoint = endpoint or os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
        remote = settings.Remote(f"{self.tool} artifacts", f"s3://{bucket}", endpoint, options)
        if self.repo is None:
            raise MlmError(f"{what}: reading s3:// needs a repository (its storage settings)")
        conn = transfer.connect(self.repo, remote)
        self._fs[bucket] = conn.fs
        return conn.fs

    @contextlib.contextmanager
    def _guard(self, what: str, uri: str) -> Iterator[None]:
        """One clear line for what S3 does wrong: no bucket, no access, no network."""
        try:
            yield
        except MlmError:
            raise
        except FileNotFoundError as exc:
            raise MlmError(f"{what}: {uri}: the bucket or key does not exist ({exc})") from exc
        except PermissionError as exc:
            raise MlmError(
                f"{what}: {uri}: access refused ({exc}); set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) as for MLflow"
            ) from exc
        except Exception as exc:
            name = type(exc).__name__
            if "Connect" in name or "Timeout" in name or "Credential" in name:
                raise MlmError(
                    f"{what}: {uri}: {exc} (endpoint: [storage.remotes] endpoint_url of a "
                    "remote on this bucket, or MLFLOW_S3_ENDPOINT_URL)"
                ) from exc
            raise


def _local(path: Path) -> Files:
    if path.is_file():
        return {path.name: path.read_bytes}
    if not path.is_dir():
        return {}
    return {
        f.relative_to(path).as_posix(): f.read_bytes for f in sorted(path.rglob("*")) if f.is_file()
    }
