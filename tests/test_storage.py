"""unireward.io.storage: local paths and s3:// (against a real SeaweedFS server)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from unireward.io import storage


# ------------------------------------------------------------------------------------------ local
def test_local_round_trip_is_atomic_and_leaves_no_temp_files(tmp_path: Path):
    target = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 7
    assert not storage.exists(target)

    storage.write_bytes(target, payload)

    assert storage.exists(target)
    assert storage.exists(str(target))
    assert storage.read_bytes(target) == payload
    assert storage.read_bytes(str(target), max_bytes=len(payload)) == payload
    assert sorted(os.listdir(tmp_path)) == ["blob.bin"]  # the temporary file was renamed, not left behind

    # overwrite replaces the whole content, still without leftovers
    storage.write_bytes(str(target), b"short")
    assert target.read_bytes() == b"short"
    assert sorted(os.listdir(tmp_path)) == ["blob.bin"]


def test_local_file_uri_round_trip(tmp_path: Path):
    target = tmp_path / "via-uri.txt"
    storage.write_bytes(f"file://{target}", b"hello")
    assert target.read_bytes() == b"hello"
    assert storage.read_bytes(f"file://{target}") == b"hello"
    assert storage.exists(f"file://{target}")


def test_local_write_creates_nested_folders(tmp_path: Path):
    target = storage.join(str(tmp_path), "a", "b", "c", "deep.json")
    assert target == str(tmp_path / "a" / "b" / "c" / "deep.json")
    assert not (tmp_path / "a").exists()

    storage.write_bytes(target, b'{"ok": true}')

    assert (tmp_path / "a" / "b" / "c").is_dir()
    assert storage.read_bytes(target) == b'{"ok": true}'
    assert os.listdir(tmp_path / "a" / "b" / "c") == ["deep.json"]


def test_local_missing_file_raises_file_not_found(tmp_path: Path):
    missing = tmp_path / "nope.bin"
    assert storage.exists(missing) is False
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(missing)
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(missing, max_bytes=10)


def test_local_max_bytes_limit_raises_value_error(tmp_path: Path):
    target = tmp_path / "big.bin"
    storage.write_bytes(target, b"x" * 100)
    assert storage.read_bytes(target, max_bytes=100) == b"x" * 100  # exactly at the limit is fine
    with pytest.raises(ValueError, match="over the limit of 99"):
        storage.read_bytes(target, max_bytes=99)


def test_resolve_and_join():
    fs, path = storage.resolve("relative/dir/file.txt")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == str(Path("relative/dir/file.txt").absolute())
    assert storage.join("s3://bucket/prefix", "x", "y.bin") == "s3://bucket/prefix/x/y.bin"
    assert storage.join("s3://bucket/prefix/", "y.bin") == "s3://bucket/prefix/y.bin"
    with pytest.raises(ValueError, match="unsupported storage URI"):
        storage.resolve("gs://bucket/key")


# --------------------------------------------------------------------------------------------- s3
@pytest.mark.slow
def test_s3_round_trip(s3_env: str):
    uri = storage.join(s3_env, "nested", "dir", "blob.bin")
    assert uri.startswith("s3://unireward-test/") and uri.endswith("/nested/dir/blob.bin")
    payload = os.urandom(4096) + b"\x00tail"
    assert storage.exists(uri) is False

    storage.write_bytes(uri, payload)

    assert storage.exists(uri) is True
    assert storage.read_bytes(uri) == payload
    assert storage.read_bytes(uri, max_bytes=len(payload)) == payload
    with pytest.raises(ValueError, match=f"over the limit of {len(payload) - 1}"):
        storage.read_bytes(uri, max_bytes=len(payload) - 1)

    storage.write_bytes(uri, b"replaced")
    assert storage.read_bytes(uri) == b"replaced"


@pytest.mark.slow
def test_s3_object_is_visible_to_a_plain_s3_client(s3_env: str, s3_server):
    import boto3

    uri = storage.join(s3_env, "plain.txt")
    storage.write_bytes(uri, b"seen by boto3")
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    )
    key = uri[len(f"s3://{s3_server.bucket}/") :]
    assert client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read() == b"seen by boto3"


@pytest.mark.slow
def test_s3_missing_key_raises_file_not_found(s3_env: str):
    uri = storage.join(s3_env, "does-not-exist.bin")
    assert storage.exists(uri) is False
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(uri, max_bytes=1024)
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(uri)
