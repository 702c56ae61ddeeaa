"""Turning what a caller hands `put_asset` into what a version records.

Shared by every backend: the SQL backend puts content in its own blob store, the HTTP
backend hashes on the client and uploads to the server's, so both check and hash the
same way.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from metastore.blobs import DIR_MEDIA_TYPE, directory_manifest, manifest_bytes, sha256_file
from metastore.errors import InvalidValue
from metastore.models import ASSET_KINDS
from metastore.records import validate_asset_name, validate_filename


def prepare_content(
    blobs, kind: str, name: str, content, *, uri, digest, size, media_type, meta, relation, copy
) -> tuple[str, int | None, str, str | None, dict]:
    """Check an asset write and turn its content into (digest, size, uri, media type,
    meta): bytes and paths are hashed and, with `copy`, put into `blobs` (a local
    BlobStore, or a server's through the remote store); external content passes through
    by `uri` and `digest`. Every Store's put_asset starts here."""
    if kind not in ASSET_KINDS:
        raise InvalidValue(f"unknown asset kind {kind!r}", hint=f"one of: {', '.join(ASSET_KINDS)}")
    validate_asset_name(name)
    if relation is not None and relation not in ("used", "produced"):
        raise InvalidValue("relation of a run to an asset is 'used' or 'produced'")
    meta = dict(meta or {})
    if "filename" in meta:
        validate_filename(meta["filename"])
    if content is None:
        if not uri or not digest:
            raise InvalidValue("an external asset needs both uri= and digest=")
        return digest, size, uri, media_type, meta
    if isinstance(content, bytes | bytearray):
        digest, size = blobs.put_bytes(bytes(content))
        return digest, size, "blob:", media_type, meta
    path = Path(content)
    if not path.exists():
        raise InvalidValue(f"no such file or directory: {path}")
    meta.setdefault("filename", path.name)
    if path.is_dir():
        if copy:
            digest, size, files = blobs.put_directory(path)
            uri = "blob:"
        else:
            files = directory_manifest(path)
            digest = hashlib.sha256(manifest_bytes(files)).hexdigest()
            size = sum(f["size"] for f in files.values())
            uri = path.resolve().as_uri()
        meta.setdefault("files", len(files))
        return digest, size, uri, DIR_MEDIA_TYPE, meta
    if copy:
        digest, size = blobs.put_file(path)
        uri = "blob:"
    else:
        digest, size = sha256_file(path)
        uri = path.resolve().as_uri()
    return digest, size, uri, media_type or mimetypes.guess_type(path.name)[0], meta
