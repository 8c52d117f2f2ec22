"""Storage: local paths and ``s3://`` URIs through pyarrow.fs, one API for both.

S3 endpoint and credentials come from the standard AWS environment variables
(``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``). Writes are atomic: a reader never
sees a half-written file (local: write a temporary file, then rename; S3: a single PUT).
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
import threading
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

_lock = threading.Lock()
_s3_cache: dict[tuple, pafs.S3FileSystem] = {}


def is_s3(uri: str) -> bool:
    return isinstance(uri, str) and uri.startswith("s3://")


def is_remote(uri: str) -> bool:
    return isinstance(uri, str) and "://" in uri and not uri.startswith("file://")


# The environment that configures s3:// access: what every worker of a job (on any node) needs too
ENV_VARS = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


_AWS_ERROR = re.compile(r"AWS Error (?P<code>[A-Z_]+)(?: during (?P<op>\w+) operation)?:?\s*(?P<detail>[^\n]*)")
_CREDENTIAL_CODES = (
    "ACCESS_DENIED",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "EXPIRED_TOKEN",
    "INVALID_CLIENT_TOKEN_ID",
    "MISSING_AUTHENTICATION_TOKEN",
    "UNRECOGNIZED_CLIENT",
)


def describe_error(error: BaseException | str) -> str | None:
    """One line for a failed object-store operation (pyarrow's S3 errors, also when a Ray task
    re-raises one): the object, the operation, what the store said, and the variables to check.
    None when ``error`` is not an S3 failure."""
    text = str(error)
    m = _AWS_ERROR.search(text)
    if not m:
        return None
    bucket = re.search(r"bucket '([^']*)'", text)
    key = re.search(r"key '([^']*)'", text)
    doing = re.search(r"[Ww]hen ([^:']+?)(?: for| under| in|:)", text)
    where = f"s3://{bucket.group(1)}/{key.group(1) if key else ''}" if bucket else "the object store"
    op = m.group("op") or (doing.group(1) if doing else "the request")
    code, detail = m.group("code"), m.group("detail").strip().rstrip(".")
    if code in _CREDENTIAL_CODES:
        hint = (
            "check the credentials and the endpoint: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN "
            "for temporary credentials), AWS_ENDPOINT_URL, AWS_REGION"
        )
    elif code in ("NETWORK_CONNECTION", "ENDPOINT_RESOLUTION_FAILURE"):
        hint = "check AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) and that the store is reachable"
    elif code in ("NO_SUCH_BUCKET", "RESOURCE_NOT_FOUND"):
        hint = "check the bucket name and AWS_REGION"
    else:
        hint = "check AWS_ENDPOINT_URL, AWS_REGION and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    return f"{where}: {op} failed with {code}" + (f" ({detail})" if detail else "") + f"; {hint}"


def _s3_env_key() -> tuple:
    return tuple(os.environ.get(n) for n in ENV_VARS)


def s3_filesystem() -> pafs.S3FileSystem:
    """An S3 filesystem configured from the AWS environment (cached per configuration)."""
    key = _s3_env_key()
    with _lock:
        fs = _s3_cache.get(key)
        if fs is None:
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            kwargs: dict = {}
            if endpoint:
                parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
                kwargs["endpoint_override"] = parsed.netloc
                kwargs["scheme"] = parsed.scheme or "https"
            if os.environ.get("AWS_ACCESS_KEY_ID"):
                kwargs["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
                kwargs["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
                if os.environ.get("AWS_SESSION_TOKEN"):
                    kwargs["session_token"] = os.environ["AWS_SESSION_TOKEN"]
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if region:
                kwargs["region"] = region
            elif endpoint:
                kwargs["region"] = "us-east-1"  # S3-compatible servers ignore it; avoids a region lookup
            fs = pafs.S3FileSystem(**kwargs)
            _s3_cache[key] = fs
        return fs


def resolve(uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path, ``file://`` URI or ``s3://`` URI."""
    uri = os.fspath(uri)
    if is_s3(uri):
        return s3_filesystem(), uri[len("s3://") :]
    if uri.startswith("file://"):
        uri = urlparse(uri).path
    if "://" in uri:
        raise ValueError(f"unsupported storage URI {uri!r}: use a local path or s3://bucket/key")
    return pafs.LocalFileSystem(), str(Path(uri).absolute())


def join(base: str | os.PathLike, *parts: str) -> str:
    base = os.fspath(base)
    if is_s3(base):
        return "s3://" + posixpath.join(base[len("s3://") :], *parts)
    return os.path.join(base, *parts)


def read_bytes(uri: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """Reads a whole object. Raises FileNotFoundError, or ValueError when over ``max_bytes``."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such file: {uri}")
    if info.type == pafs.FileType.Directory:
        raise IsADirectoryError(f"is a directory, not a file: {uri}")
    if max_bytes is not None and info.size is not None and info.size > max_bytes:
        raise ValueError(f"{uri} is {info.size} bytes, over the limit of {max_bytes}")
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes(uri: str | os.PathLike, data: bytes) -> None:
    """Writes a whole object atomically, creating parent folders."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=parent, prefix=f".{os.path.basename(path)}.", suffix=f".{uuid.uuid4().hex[:6]}.tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        with fs.open_output_stream(path) as f:
            f.write(data)


def read_jsonl(uri: str | os.PathLike) -> list:
    """The records of a JSON Lines file (blank lines skipped)."""
    import json

    return [json.loads(line) for line in read_bytes(uri).decode().splitlines() if line.strip()]


def write_jsonl(uri: str | os.PathLike, records) -> None:
    """Writes records as JSON Lines, atomically."""
    import json

    write_bytes(uri, "".join(json.dumps(r) + "\n" for r in records).encode())


def exists(uri: str | os.PathLike) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_yaml(uri: str | os.PathLike, error: type[Exception] = ValueError, what: str = "file"):
    """Parses a YAML file (local or s3://); a missing file or bad YAML raises ``error`` with a clear message."""
    import yaml

    try:
        return yaml.safe_load(read_bytes(uri).decode("utf-8"))
    except FileNotFoundError:
        raise error(f"{what} not found: {os.fspath(uri)}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise error(f"{os.fspath(uri)}: not valid YAML: {e}") from None


def copy_tree(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copies a folder (local or s3://) to another (local or s3://), creating it."""
    sfs, spath = resolve(src)
    dfs, dpath = resolve(dst)
    if sfs.get_file_info(spath).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"no such folder: {src}")
    dfs.create_dir(dpath, recursive=True)
    pafs.copy_files(spath, dpath, source_filesystem=sfs, destination_filesystem=dfs)
