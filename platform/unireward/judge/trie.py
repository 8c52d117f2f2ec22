"""The logit method's arithmetic: probabilities of a closed set of answers (verdict phrases, or the
values of a score scale) read from next-token distributions.

Each answer is a token sequence (e.g. ``Image 1 is better``, ``Final Score: 7``). Put them in a
trie. Tokens where every answer agrees (the shared prefix, and the tail of each answer after it has
become unique) are taken as given: the judge was trained to emit the fixed phrase. The model is
asked only at the *query nodes*: where answers branch, or where one answer ends and a longer one
continues ("1" vs "10"). There

    P(answer) = prod over query nodes on its path of P(next token of the answer | node)
                x P(stop | answer's own node)   if a longer answer continues it,

with P(stop | node) = 1 - sum of P(child | node) over the node's children in the trie (the mass
on tokens outside the trie counts as stopping). Answer probabilities are then renormalised; their
sum before renormalising (``mass``) says how much of the model's belief falls on valid answers.

If all query nodes lie on one path (verdict phrases; single-token scales; a 1-10 scale), one
forward pass over prompt + that path, keeping the logits of its last few positions, reads them all.
Otherwise (e.g. a 0-100 scale: "7", "70", "100"), the prompt is encoded once with a KV cache and the
paths to the remaining query nodes are run as one small batched continuation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Tokens = tuple[int, ...]


@dataclass(frozen=True)
class AnswerTrie:
    options: dict[str, Tokens]  # answer label -> token ids of the whole answer text
    common: Tokens  # tokens shared by all answers (taken as given)
    queries: tuple[Tokens, ...]  # token prefixes (each starting with ``common``) where P(next) is needed
    paths: tuple[Tokens, ...]  # maximal query prefixes: what must be run after the prompt

    @property
    def single_path(self) -> bool:
        return len(self.paths) == 1

    @property
    def path(self) -> Tokens:
        """The one path (single-path tries)."""
        assert self.single_path
        return self.paths[0]

    def keep(self) -> int:
        """Single-path tries: how many final positions of prompt + path hold query distributions."""
        return len(self.path) - min(len(q) for q in self.queries) + 1

    def children(self, node: Tokens) -> set[int]:
        n = len(node)
        return {o[n] for o in self.options.values() if len(o) > n and o[:n] == node}

    def combine(self, dist: Mapping[Tokens, Mapping[int, float]]) -> tuple[dict[str, float], float]:
        """Answer probabilities (renormalised) and the mass on valid answers, given the next-token
        probabilities at every query node (``dist[node][token]``; only the trie's children of each
        node are needed)."""
        raw: dict[str, float] = {}
        terminal = set(self.options.values())
        for label, toks in self.options.items():
            p = 1.0
            for q in self.queries:
                if len(q) < len(toks) and toks[: len(q)] == q:
                    p *= float(dist[q].get(toks[len(q)], 0.0))
            if toks in self.queries and toks in terminal:  # a longer answer continues this one
                p *= max(0.0, 1.0 - sum(float(dist[toks].get(c, 0.0)) for c in self.children(toks)))
            raw[label] = p
        mass = sum(raw.values())
        if mass <= 0.0:
            return {k: 1.0 / len(raw) for k in raw}, 0.0
        return {k: v / mass for k, v in raw.items()}, mass


def build_trie(options: Mapping[str, Sequence[int]]) -> AnswerTrie:
    opts = {k: tuple(int(t) for t in v) for k, v in options.items()}
    if len(opts) < 2:
        raise ValueError("an answer set needs at least two answers")
    if any(not v for v in opts.values()):
        raise ValueError("an answer tokenizes to nothing")
    if len(set(opts.values())) != len(opts):
        dup = [k for k, v in opts.items() if list(opts.values()).count(v) > 1]
        raise ValueError(f"answers {dup} tokenize identically")
    seqs = list(opts.values())
    terminal = set(seqs)
    prefixes = {s[:i] for s in seqs for i in range(len(s) + 1)}
    queries = []
    for node in prefixes:
        n = len(node)
        kids = {s[n] for s in seqs if len(s) > n and s[:n] == node}
        if len(kids) >= 2 or (kids and node in terminal):
            queries.append(node)
    queries.sort(key=lambda q: (len(q), q))
    common = queries[0]
    if any(q[: len(common)] != common for q in queries):  # cannot happen for a trie; guard the invariant
        raise AssertionError("query nodes do not share the root branch")
    paths = tuple(q for q in queries if not any(len(o) > len(q) and o[: len(q)] == q for o in queries))
    return AnswerTrie(opts, common, tuple(queries), paths)
