"""Content-addressed blob storage.

A blob is stored once under `sha256/ab/cdef…` below the root, whatever it was called and
however often it is logged. The root is a local directory, or any fsspec URL (s3://,
gs://, memory://) when `fsspec` is installed.

A directory is stored as its files' blobs plus a manifest blob (JSON: relative path →
digest and size); the directory's digest is the manifest's, so the same tree gives the
same digest wherever it lives.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from metastore.errors import IntegrityFailure, InvalidValue, NotFound

CHUNK = 1 << 20
DIR_MEDIA_TYPE = "application/vnd.metastore.directory+json"


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def directory_manifest(path: Path) -> dict[str, dict]:
    """Relative POSIX path → {digest, size} for every file below `path`, sorted."""
    files = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest, size = sha256_file(file)
        files[file.relative_to(path).as_posix()] = {"digest": digest, "size": size}
    return files


def manifest_bytes(files: dict[str, dict]) -> bytes:
    return json.dumps({"files": files}, sort_keys=True, separators=(",", ":")).encode()


class Blobs:
    """What every blob store does on top of `put_file` and `put_bytes`."""

    def put_directory(self, path: Path) -> tuple[str, int, dict[str, dict]]:
        """Store every file and the manifest; returns (manifest digest, total size, files)."""
        files = directory_manifest(path)
        for rel in files:
            self.put_file(path / rel)
        digest, _ = self.put_bytes(manifest_bytes(files))
        return digest, sum(f["size"] for f in files.values()), files


class BlobStore(Blobs):
    """Blobs below one root. Writes go to a temporary name first and are renamed into
    place, so a killed process never leaves a truncated blob under a digest."""

    def __init__(self, root: str | os.PathLike):
        root = str(root)
        self.url = root
        self._fs = None
        if "://" in root and not root.startswith("file://"):
            try:
                import fsspec
            except ImportError as e:  # pragma: no cover - depends on the install
                raise InvalidValue(
                    f"blob root {root!r} needs fsspec",
                    hint="pip install 'metastore[remote-blobs]'",
                ) from e
            self._fs, self._root = fsspec.core.url_to_fs(root)
        else:
            self._root = root.removeprefix("file://")

    # -- addressing ------------------------------------------------------------------
    def _rel(self, digest: str) -> str:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InvalidValue(f"not a sha256 digest: {digest!r}")
        return f"sha256/{digest[:2]}/{digest[2:]}"

    def _full(self, digest: str) -> str:
        return f"{self._root.rstrip('/')}/{self._rel(digest)}"

    def exists(self, digest: str) -> bool:
        if self._fs is not None:
            return self._fs.exists(self._full(digest))
        return os.path.exists(self._full(digest))

    # -- writing ---------------------------------------------------------------------
    def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self._write(digest, lambda f: f.write(data))
        return digest, len(data)

    def put_file(self, path: Path) -> tuple[str, int]:
        digest, size = sha256_file(path)
        if not self.exists(digest):

            def copy(f: BinaryIO) -> None:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, f, CHUNK)

            self._write(digest, copy)
        return digest, size

    def _write(self, digest: str, writer) -> None:
        full = self._full(digest)
        if self._fs is not None:
            with self._fs.open(full, "wb") as f:
                writer(f)
            return
        os.makedirs(os.path.dirname(full), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(full), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                writer(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, full)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # -- reading ---------------------------------------------------------------------
    def open(self, digest: str, verify: bool = True) -> BinaryIO:
        """The blob's bytes as a file object, after checking them against the digest."""
        if verify:
            self.verify(digest)
        try:
            if self._fs is not None:
                return self._fs.open(self._full(digest), "rb")
            return open(self._full(digest), "rb")
        except FileNotFoundError as e:
            raise NotFound(f"blob {digest} is missing from {self.url}") from e

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def verify(self, digest: str) -> None:
        h = hashlib.sha256()
        try:
            opener = self._fs.open if self._fs is not None else open
            with opener(self._full(digest), "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except FileNotFoundError as e:
            raise NotFound(f"blob {digest} is missing from {self.url}") from e
        if h.hexdigest() != digest:
            raise IntegrityFailure(
                f"blob {digest} is corrupt: its content hashes to {h.hexdigest()}"
            )

    def local_path(self, digest: str) -> Path | None:
        """The blob's path on this machine, if the root is local."""
        return None if self._fs is not None else Path(self._full(digest))

    def materialize(self, digest: str, target: Path) -> Path:
        """Write a blob (file) to `target`, verified."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.open(digest) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        return target

    def materialize_directory(self, manifest_digest: str, target: Path) -> Path:
        manifest = json.loads(self.read_bytes(manifest_digest))
        for rel, entry in manifest["files"].items():
            dest = (target / rel).resolve()
            if not dest.is_relative_to(target.resolve()):
                raise IntegrityFailure(f"manifest {manifest_digest} escapes its directory: {rel}")
            self.materialize(entry["digest"], dest)
        return target

    def manifest_digests(self, manifest_digest: str) -> list[str]:
        manifest = json.loads(self.read_bytes(manifest_digest))
        return [entry["digest"] for entry in manifest["files"].values()]

    # -- garbage collection ------------------------------------------------------------
    def digests(self) -> Iterator[str]:
        base = f"{self._root.rstrip('/')}/sha256"
        if self._fs is not None:
            if not self._fs.exists(base):
                return
            for path in self._fs.find(base):
                parts = path.rstrip("/").split("/")
                yield parts[-2] + parts[-1]
            return
        if not os.path.isdir(base):
            return
        for prefix in os.listdir(base):
            for rest in os.listdir(os.path.join(base, prefix)):
                if not rest.startswith(".tmp-"):
                    yield prefix + rest

    def delete(self, digest: str) -> None:
        full = self._full(digest)
        if self._fs is not None:
            self._fs.rm(full)
        elif os.path.exists(full):
            os.unlink(full)
