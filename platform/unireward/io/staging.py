"""Exactly-once output for batch jobs, on any storage the job writes to.

Workers commit their results as *shards*: one Parquet file per processed batch, written atomically,
named by a hash of the unit ids it holds (``_staging/<hash>.parquet``). A unit (a prompt, an item)
is done exactly when a shard holds it. So:

- a batch retried by Ray after a worker died rewrites the same shard with the same content (same
  name): nothing is duplicated;
- a job killed midway leaves only whole shards; rerun with the same spec and output, it skips the
  units already done and processes only the rest;
- at the end the driver *compacts*: it reads every shard, keeps each unit once (the first shard in
  name order, should two ever hold it), sorts by unit id and writes the final tables. The final
  output is therefore the same however often the job was interrupted.

A fingerprint of the spec is stored beside the shards, so a rerun with a different spec cannot
silently mix results of two configurations in one output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import schema as schema_mod
from . import storage

STAGING = "_staging"
FINGERPRINT = "_spec.json"


class SpecMismatch(RuntimeError):
    """The output folder holds results of a different spec."""


def shard_name(unit_ids: Iterable[str]) -> str:
    h = hashlib.sha256("\n".join(sorted(unit_ids)).encode()).hexdigest()
    return f"{h[:24]}.parquet"


def write_shard(output: str, rows: Sequence[dict[str, Any]], schema: pa.Schema, id_column: str) -> str | None:
    """Commits ``rows`` (one per unit) as one shard; returns its URI (None for no rows)."""
    if not rows:
        return None
    uri = storage.join(output, STAGING, shard_name(str(r[id_column]) for r in rows))
    schema_mod.write_parquet(rows, schema, uri)
    return uri


def _shards(output: str) -> list[str]:
    fs, path = storage.resolve(storage.join(output, STAGING))
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return []
    files = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(f.path for f in files if f.type == pafs.FileType.File and f.path.endswith(".parquet"))


def done_units(output: str, id_column: str) -> set[str]:
    fs, _ = storage.resolve(output)
    done: set[str] = set()
    for path in _shards(output):
        done.update(pq.read_table(path, columns=[id_column], filesystem=fs).column(id_column).to_pylist())
    return done


def read_staged(output: str, id_column: str) -> list[dict[str, Any]]:
    """Every committed unit once, sorted by id."""
    fs, _ = storage.resolve(output)
    seen: dict[str, dict[str, Any]] = {}
    for path in _shards(output):
        for row in pq.read_table(path, filesystem=fs).to_pylist():
            seen.setdefault(str(row[id_column]), row)
    return [seen[k] for k in sorted(seen)]


def check_fingerprint(output: str, spec: dict[str, Any]) -> bool:
    """Records the spec's fingerprint on the first run; on a rerun, raises SpecMismatch if the spec
    changed in a way that changes results. Returns True if the output already had results."""
    uri = storage.join(output, FINGERPRINT)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    if storage.exists(uri):
        stored = json.loads(storage.read_bytes(uri))
        if stored["digest"] != digest:
            changed = sorted(k for k in set(stored["spec"]) | set(spec) if stored["spec"].get(k) != spec.get(k))
            raise SpecMismatch(
                f"{output} holds results of a different spec (changed: {', '.join(changed)}). Use a new output "
                "folder, or delete this one to start over."
            )
        return True
    storage.write_bytes(uri, json.dumps(dict(digest=digest, spec=spec), indent=2, sort_keys=True, default=str).encode())
    return False


def clear(uri: str) -> None:
    """Removes a folder of previous final outputs (not the staging shards)."""
    fs, path = storage.resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir_contents(path, missing_dir_ok=True)


def write_parts(rows: Sequence[dict[str, Any]], schema: pa.Schema, folder: str, part_rows: int = 100_000) -> list[str]:
    """Writes rows as part-00000.parquet, part-00001.parquet, ... (at least one part, maybe empty)."""
    uris = []
    for k in range(max(1, -(-len(rows) // part_rows))):
        uri = storage.join(folder, f"part-{k:05d}.parquet")
        schema_mod.write_parquet(rows[k * part_rows : (k + 1) * part_rows], schema, uri)
        uris.append(uri)
    return uris
