"""Checkpoint profiles from the official UnifiedReward inference scripts.

``import_upstream(DIR)`` reads a local checkout of github.com/CodeGoat24/UnifiedReward (the user
clones it) and returns a checkpoint profile: per released generation a protocol family whose
templates are the official scripts' prompt text, with the media sampling, decoding budgets and
answer formats of their inference (``upstream.yaml``, data in this project). The scripts are parsed
(``ast``), never run: the prompt is the f-string (or concatenation of string pieces) a script gives
as the text part of its chat message, or assigns to the variable that part names; its interpolated
variables become the template's placeholders. This project ships no prompt text of its own from
those scripts: the profile is written on the user's machine from the user's checkout.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_MAP = Path(__file__).with_name("upstream.yaml")
_TEXT_VARIABLES = ("problem", "prompt_text", "question")  # where scripts keep the text, if not inline


class UpstreamError(ValueError):
    """The folder is not a checkout this importer recognises (the message says what was looked for)."""


@dataclass
class ImportReport:
    """What an import found: the profile, and per script what was read or why not."""

    profile: dict[str, Any]
    found: list[dict[str, Any]] = field(default_factory=list)  # {path, family, task, mode}
    missing: list[dict[str, Any]] = field(default_factory=list)  # {path, family, reason}

    def lines(self) -> list[str]:
        out = [
            f"read {len(self.found)} official script(s) into {len(self.profile['families'])} protocol famil"
            f"{'y' if len(self.profile['families']) == 1 else 'ies'}:"
        ]
        out += [f"  {f['family']}/{f['task']}/{f['mode']}  <- {f['path']}" for f in self.found]
        if self.missing:
            out.append(f"not imported ({len(self.missing)}):")
            out += [f"  {m['family']}: {m['path']}: {m['reason']}" for m in self.missing]
        return out


def upstream_map() -> dict[str, Any]:
    with open(_MAP) as f:
        return yaml.safe_load(f)


def import_upstream(root: str | Path, generations: list[str] | None = None) -> ImportReport:
    """The profile of the official scripts under ``root`` (see the module docstring).
    ``generations``: only these (keys of upstream.yaml: 1.x-qwen, 1.x-llava, 2.0, think-qwen,
    think-qwen3); default all. Raises UpstreamError when ``root`` holds none of the scripts."""
    root = Path(root)
    spec = upstream_map()
    known = spec["generations"]
    wanted = generations or list(known)
    unknown = [g for g in wanted if g not in known]
    if unknown:
        raise UpstreamError(f"unknown generation(s) {unknown}; known: {list(known)}")
    if not root.is_dir():
        raise UpstreamError(f"{root}: no such folder (clone github.com/{spec['repository']} first)")
    expected = [s["path"] for g in wanted for s in known[g]["scripts"]]
    if not any((root / p).is_file() for p in expected):
        raise UpstreamError(
            f"{root} does not look like a checkout of {spec['repository']}: none of its official inference scripts "
            f"is there (looked for {len(expected)}, e.g. {expected[0]}). Clone the repository and pass its folder."
        )
    report = ImportReport(profile={})
    families: dict[str, Any] = {}
    for g in wanted:
        gen = known[g]
        family = gen["family"]
        for script in gen["scripts"]:
            path = root / script["path"]
            where = dict(path=script["path"], family=family)
            if not path.is_file():
                report.missing.append(dict(where, reason="not in this checkout"))
                continue
            try:
                template = extract_template(
                    path.read_text(encoding="utf-8"),
                    {**spec["names"], **script.get("names", {})},
                    gen.get("strip_visual_tokens", []),
                )
            except UpstreamError as e:
                report.missing.append(dict(where, reason=str(e)))
                continue
            protocol: dict[str, Any] = dict(template=template)
            for key in ("verdicts", "score", "dimensions", "labels", "answer_prefix", "max_new_tokens", "reasons"):
                if key in script:
                    protocol[key] = script[key]
            media = {**gen.get("media", {}), **script.get("media", {})}
            if media:
                protocol["media"] = media
            families.setdefault(family, {}).setdefault(script["task"], {})[script["mode"]] = protocol
            report.found.append(dict(where, task=script["task"], mode=script["mode"]))
    if not families:
        raise UpstreamError(
            f"{root}: none of the official scripts could be read:\n"
            + "\n".join(f"  {m['path']}: {m['reason']}" for m in report.missing)
        )
    profile: dict[str, Any] = dict(
        name="UnifiedReward official inference" if len(families) > 1 else f"UnifiedReward {wanted[0]}",
        source=dict(
            repository=spec["repository"],
            checkout=str(root.resolve()),
            commit=_commit(root),
            generations={known[g]["family"]: known[g]["about"] for g in wanted if known[g]["family"] in families},
        ),
    )
    if len(families) == 1:
        profile["family"] = next(iter(families))
    report.profile = {"version": 1, "profile": profile, "families": families}
    return report


def _commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# ------------------------------------------------------------------------------------ the source
def extract_template(source: str, names: Mapping[str, str], strip: list[str] | tuple[str, ...] = ()) -> str:
    """The prompt template of one official script: the text part of its chat message (or the text
    variable that part names, or a module-level ``problem`` / ``prompt_text`` / ``question``) as
    written, with its interpolated variables replaced by placeholders (``names``: variable ->
    placeholder) and leading visual tokens (``strip``, e.g. ``<image>``) removed."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise UpstreamError(
            f"not valid Python (line {e.lineno}: {e.msg}); the official script itself is broken"
        ) from None
    assigns = {
        t.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    expr = _message_text(tree)
    if isinstance(expr, ast.Name):
        expr = assigns.get(expr.id)
    if expr is None:
        expr = next((assigns[v] for v in _TEXT_VARIABLES if v in assigns), None)
    if expr is None:
        raise UpstreamError(
            "no prompt text found (no text part in a chat message, no problem/prompt_text/question "
            "variable): a layout this importer does not recognise"
        )
    pieces = _pieces(expr, names)
    text = "".join(p if isinstance(p, str) else "{" + p[0] + "}" for p in pieces)
    used = {p[0] for p in pieces if not isinstance(p, str)}
    for token in strip:  # visuals come first in our chats: drop the script's own visual tokens
        text = re.sub(rf"^(?:\s*{re.escape(token)}\s*)+", "", text)
    if not used:
        raise UpstreamError("the prompt interpolates no caption or question variable")
    clash = re.search(r"\{(prompt|first|second|candidate)\}", "".join(p for p in pieces if isinstance(p, str)))
    if clash:
        raise UpstreamError(f"the prompt's own text contains {clash.group(0)!r}, which would read as a placeholder")
    return text


def _message_text(tree: ast.Module) -> ast.expr | None:
    """The value of the first ``"text"`` key of a dict whose ``"type"`` is ``"text"``, anywhere in a
    module-level ``messages = [...]`` (or any module-level list of such dicts)."""
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for sub in ast.walk(node.value):
            if isinstance(sub, ast.Dict):
                keys = {
                    k.value: v
                    for k, v in zip(sub.keys, sub.values)
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
                kind = keys.get("type")
                if isinstance(kind, ast.Constant) and kind.value == "text" and "text" in keys:
                    return keys["text"]
    return None


def _pieces(expr: ast.expr, names: Mapping[str, str]) -> list[str | tuple[str]]:
    """The prompt as text pieces and placeholders ((name,)), from an f-string, a string, or a
    concatenation (``+``) of them; a visual-token run like ``'<image>\\n' * len(images)`` becomes
    one ``<image>`` token (stripped later)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.JoinedStr):
        out: list[str | tuple[str]] = []
        for v in expr.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                out.append(v.value)
            elif (
                isinstance(v, ast.FormattedValue)
                and isinstance(v.value, ast.Name)
                and v.format_spec is None
                and v.conversion == -1
            ):
                if v.value.id not in names:
                    raise UpstreamError(f"the prompt interpolates {v.value.id!r}, which is not one of {sorted(names)}")
                out.append((names[v.value.id],))
            else:
                raise UpstreamError(f"the prompt interpolates an expression ({ast.unparse(v)}), not a plain variable")
        return out
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return _pieces(expr.left, names) + _pieces(expr.right, names)
    if (
        isinstance(expr, ast.BinOp)
        and isinstance(expr.op, ast.Mult)
        and isinstance(expr.left, ast.Constant)
        and isinstance(expr.left.value, str)
    ):
        return [expr.left.value]  # one run of visual tokens, e.g. '<image>\n' * len(images)
    raise UpstreamError(f"the prompt is built in a way this importer does not recognise: {ast.unparse(expr)[:80]}")


# ------------------------------------------------------------------------------------ writing
class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str):
    # block style keeps a template readable; strings it cannot hold exactly (trailing spaces,
    # tabs, a leading space) are double-quoted with escapes, so the text round-trips unchanged
    block = "\n" in value and not re.search(r"[ \t]\n|[ \t]$|^[ \t]|\t|\r", value)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if block else None)


_Dumper.add_representer(str, _str)


def dump_profile(profile: Mapping[str, Any]) -> str:
    """A profile as YAML that reads back to exactly the same texts."""
    head = (
        "# A unireward checkpoint profile, written by `unireward protocols import-upstream` from the official\n"
        "# inference scripts of a local checkout (profile.source). Give it to a judge with --protocols / judge.protocols.\n"
    )
    return head + yaml.dump(dict(profile), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
