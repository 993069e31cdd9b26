"""BM25 (bm25s) over jieba tokens of text normalised to Simplified Chinese, lower case."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from knowledge.dictionary import dictionary
from knowledge.entry import Entry
from knowledge.normalize import to_simplified

_log = logging.getLogger(__name__)

TOKENIZER_VERSION = 6  # bump when tokenize() or entry_tokens() change, so persisted indexes are rebuilt
_WORD = re.compile(r"[\w\-+.#/]+", re.UNICODE)
_HAN_ONLY = re.compile(r"^[\u3400-\u9fff]+$")
_CASE_CHANGE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# Host labels that name no subject: `github.com/thunlp/GNNPapers` is about GNN papers, not about `com`.
_HOST_NOISE = frozenset("www com org net io cn edu gov co uk html htm php md blob tree master main".split())

# Question words and glue that say nothing about the subject. Kept small: a word that is rare in the
# collection is evidence, whatever its part of speech.
STOPWORDS = frozenset(
    """
    的 了 是 在 和 与 及 或 等 也 都 而 对 中 这 那 这个 那个 一个 一些 一种 我 我们 你 你们 他 她 它 有 有没有 没有
    吗 呢 吧 啊 么 什么 怎么 怎么样 怎样 如何 为什么 为何 哪 哪个 哪些 哪篇 哪里 哪儿 哪一篇 篇 谁 是否 能 能否 可以 会
    想 要 请 请问 推荐 一下 介绍 讲 讲讲 关于 相关 有关 里 上 下 用 把 被 让 给 从 到 就 还 又 再 很 最 更 吗 之 其
    论文 文章 方法 问题 资料 内容 东西 知道 了解 看看 找 找到 有哪些 哪些 为
    a an the of for to in on at by with from as and or not no is are was were be been being do does did how
    what which who whom why when where whose that this these those it its there their i me my we our you your
    can could should would will shall may might must any some about into over under between paper papers
    article articles find show tell me please recommend explain explains explained explaining is there
    """.split()
)


def normalise(text: str) -> str:
    return to_simplified(unicodedata.normalize("NFKC", text)).lower()


GLOSSARY = Path(__file__).resolve().parent / "glossary.tsv"


def glossary_notions() -> list[tuple[list[str], list[str]]]:
    """(English variants, Chinese variants) per notion of the bundled glossary."""
    notions = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or "\t" not in line:
            continue
        english, chinese = line.split("\t", 1)
        notions.append(([v.strip() for v in english.split("|") if v.strip()], [v.strip() for v in chinese.split("|")]))
    return notions


TRANSLATIONS_MAX = 16  # glossary names added to one text, at most: a long body must not drown its own words


@dataclass(frozen=True)
class _Translations:
    english: re.Pattern[str] | None  # any English variant, as a whole word
    chinese: re.Pattern[str] | None  # any Chinese variant
    notions: dict[str, tuple[int, ...]]  # a normalised variant -> the notions it names
    names: tuple[tuple[str, str], ...]  # (English name, Chinese name) of each notion


@lru_cache(maxsize=1)
def _translations() -> _Translations:
    notions: dict[str, list[int]] = {}
    english: set[str] = set()
    chinese: set[str] = set()
    names = []
    for en, zh in glossary_notions():
        zh = [v for v in zh if v]
        if not en or not zh:
            continue
        names.append((en[0], zh[0]))
        for variant, side in [(v, english) for v in en] + [(v, chinese) for v in zh]:
            key = normalise(variant)
            side.add(key)
            notions.setdefault(key, []).append(len(names) - 1)

    def pattern(variants: set[str], word: bool) -> re.Pattern[str] | None:
        if not variants:
            return None
        alternation = "|".join(re.escape(v) for v in sorted(variants, key=lambda v: (-len(v), v)))
        return re.compile(rf"(?<![a-z0-9])(?:{alternation})(?![a-z0-9])" if word else f"(?:{alternation})")

    return _Translations(
        pattern(english, True), pattern(chinese, False), {k: tuple(v) for k, v in notions.items()}, tuple(names)
    )


def glossary_translations(text: str) -> list[str]:
    """The other language's name of each glossary notion that `text` names in one language only, in the order
    first met (at most `TRANSLATIONS_MAX`): "contrastive learning" for a text that says 对比学习 and never
    "contrastive", 对比学习 for one that says only "contrastive learning".

    Both the passages and the questions are embedded with these names added (`with_translations`): the small
    multilingual model matches an English description with a Chinese headline far better when both carry
    the notion's name in both languages.
    """
    table = _translations()
    norm = normalise(text)
    found: dict[int, set[int]] = {}  # notion -> the sides (0 English, 1 Chinese) that name it
    start: dict[int, int] = {}  # notion -> where the text first names it
    for side, pattern in enumerate((table.english, table.chinese)):
        if pattern is None:
            continue
        for match in pattern.finditer(norm):
            for notion in table.notions[match.group()]:
                found.setdefault(notion, set()).add(side)
                start[notion] = min(start.get(notion, match.start()), match.start())
    added: list[str] = []
    for notion in sorted(found, key=lambda notion: (start[notion], notion)):
        if len(found[notion]) == 1:
            name = table.names[notion][1 if 0 in found[notion] else 0]
            if name not in added:
                added.append(name)
    return added[:TRANSLATIONS_MAX]


def with_translations(text: str) -> str:
    """`text`, then a line of `glossary_translations(text)` when there are any."""
    names = glossary_translations(text)
    return f"{text}\n{'; '.join(names)}" if names else text


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    # the glossary's Chinese terms are words, so that 超参调优 cuts as 超参 / 调优 on both sides
    for _, chinese in glossary_notions():
        for term in chinese:
            if term and not term.isascii():
                jieba.add_word(normalise(term), freq=20000)
    return jieba


@lru_cache(maxsize=1)
def _expansions() -> dict[tuple[str, ...], tuple[frozenset[str], frozenset[str]]]:
    """Token sequence of a glossary variant -> (names, words) of its notion.

    Names identify the notion alone: a Chinese term as one word, or a one-word English variant.
    Words are the pieces of English phrases (`machine translation`): they widen BM25's recall but
    never count as a match on their own, since `learn` alone is not `contrastive learning`.
    """
    table: dict[tuple[str, ...], tuple[set[str], set[str]]] = {}
    for english, chinese in glossary_notions():
        variants = [(v, tuple(tokenize(v))) for v in english + chinese]
        names: set[str] = set()
        words: set[str] = set()
        for text, tokens in variants:
            whole = normalise(text)
            if not whole.isascii() and whole in tokens:
                names.add(whole)  # not the pieces search mode also cuts the term into
            elif len(tokens) == 1:
                names.add(tokens[0])
            else:
                words.update(tokens)
        for _, tokens in variants:
            if tokens:
                entry = table.setdefault(tokens, (set(), set()))
                entry[0].update(names)
                entry[1].update(words)
    return {key: (frozenset(n), frozenset(w)) for key, (n, w) in table.items()}


@lru_cache(maxsize=1)
def _expansions_by_first_token() -> dict[str, list[tuple[tuple[str, ...], tuple[frozenset[str], frozenset[str]]]]]:
    """The glossary variants grouped by their first token, so a query checks only the ones it can match."""
    grouped: dict[str, list[tuple[tuple[str, ...], tuple[frozenset[str], frozenset[str]]]]] = {}
    for variant, expansion in _expansions().items():
        grouped.setdefault(variant[0], []).append((variant, expansion))
    return grouped


@dataclass(frozen=True)
class Expansion:
    alternatives: dict[str, frozenset[str]]  # query token -> tokens that count as a match for it
    extra: frozenset[str]  # further tokens for BM25's recall only


def expand(tokens: Sequence[str]) -> Expansion:
    """The glossary's names, in either language, for the notions the query tokens name."""
    alternatives: dict[str, set[str]] = {token: {token} for token in tokens}
    extra: set[str] = set()
    present = set(tokens)
    by_first = _expansions_by_first_token()
    candidates = [item for token in present for item in by_first.get(token, ())]
    for variant, (names, words) in candidates:
        if all(token in present for token in variant):
            for token in variant:
                alternatives[token].update(names)
            extra.update(words)
    return Expansion({token: frozenset(alts) for token, alts in alternatives.items()}, frozenset(extra))


def warm_up() -> None:
    """Build what the first question or ingest would otherwise pay for: jieba's dictionary (about 0.6 s), the
    glossary's translation patterns and its expansions (about 0.3 s together) and the word dictionary."""
    _jieba()
    _translations()
    _expansions_by_first_token()
    dictionary()


_local = threading.local()


def _stemmer() -> Any:
    """One stemmer per thread: a snowballstemmer object keeps state while it stems."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import snowballstemmer

        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return stemmer


# British spellings, as American ones before stemming (Snowball keeps them apart: `generalise` -> generalis,
# `generalize` -> general). Applied to entries and questions alike. -ise only after the endings of the -ize
# verbs (normalise, optimise, tokenise, recognise, criticise, standardise, modernise, symbolise, ...), so that
# `supervised` still meets `supervision` and `precise` `precision`, and not in (com)promise.
_BRITISH = (
    (
        re.compile(
            r"^([a-z]*(?:al|ar|er|or|ur|im|en|an|on|gn|ic|it|at|et|es|as|il|og|ym|om|nt|rd|rn|ol|el|ll))"
            r"is(e|es|ed|ing|er|ers|ation|ations)$"
        ),
        r"\1iz\2",
    ),
    (re.compile(r"^([a-z]+l)ys(e|es|ed|ing|er|ers)$"), r"\1yz\2"),  # analyse, catalysed
    (re.compile(r"^([a-z]{3,})our(s|ed|ing|ful|ite|ites|able|ably|hood|hoods)?$"), r"\1or\2"),  # behaviour
)
_NOT_BRITISH = re.compile(r"prom(?:is|iz)")  # promise, compromise


def american(word: str) -> str:
    """`word` (lower case) with a British -ise, -yse or -our ending spelt the American way."""
    if _NOT_BRITISH.search(word):
        return word
    for pattern, replacement in _BRITISH:
        word = pattern.sub(replacement, word)
    return word


@lru_cache(maxsize=65536)
def _stem(token: str) -> str:
    """Snowball's English stem for English words, so `interpolating` meets `interpolate` (and, spelt the
    American way first, `generalises` meets `generalize`)."""
    if len(token) > 3 and token.isascii() and token.isalpha():
        return str(_stemmer().stemWord(american(token)))
    return token


def tokenize(text: str) -> list[str]:
    """Search tokens: jieba's search-mode cut of the normalised text, without punctuation or stopwords."""
    tokens: list[str] = []
    for token in _jieba().lcut_for_search(normalise(text)):
        token = token.strip().strip(".-/")
        if not token or not _WORD.fullmatch(token) or token in STOPWORDS:
            continue
        if len(token) == 1 and not _HAN_ONLY.match(token) and not token.isdigit():
            continue
        tokens.append(_stem(token))
    return tokens


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*")


def looks_like_name(word: str) -> bool:
    """A word written as a name rather than a common word: two capitals or a digit (SMOTE, TabNet, GPT-4V, o1)."""
    return len(word) >= 2 and (sum(c.isupper() for c in word) >= 2 or any(c.isdigit() for c in word))


def unknown_names(question: str, known: Callable[[str], bool]) -> int:
    """How many distinct name-like words of `question` the collection never uses, not even in part: a
    question about SMOTE or LLaVA asks for something a collection without those words cannot answer.
    `known` says whether the collection uses a search token (itself or a glossary translation)."""
    words = dict.fromkeys(word for word in _NAME.findall(question) if looks_like_name(word))
    return sum(1 for word in words if not any(known(token) for token in tokenize(word)))


def url_words(url: str) -> str:
    """The words a URL names, for BM25: host labels and path segments split at `-`, `_`, `.` and case
    changes, so that `https://github.com/thunlp/GNNPapers` can be found as "GNN papers" or "thunlp"."""
    parts = urlsplit(url)
    labels = [label for label in (parts.hostname or "").split(".") if label not in _HOST_NOISE]
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    words = []
    for piece in [*labels, *segments]:
        for word in re.split(r"[-_.+~]+", piece):
            words += _CASE_CHANGE.sub(" ", word).split()
    return " ".join(word for word in words if word.lower() not in _HOST_NOISE)


def entry_tokens(entry: Entry) -> list[str]:
    """Everything a reader could match on (`Entry.search_text`); titles count three times, since they name the
    subject; links add the words of their URLs. The titles are tokenized once."""
    titles = tokenize(" ".join([entry.title, *entry.alt_titles]))
    urls = " ".join(url_words(link.url) for link in entry.links)
    return titles * 3 + tokenize(f"{entry.search_text(titles=False)}\n{urls}")


@dataclass(frozen=True)
class LexicalScores:
    scores: np.ndarray  # BM25 score of each document, in index order
    query_tokens: list[str]
    idf: dict[str, float]
    alternatives: dict[str, frozenset[str]]  # query token -> tokens that count as a match for it
    documents: list[set[str]]  # the index's token set of each document
    max_idf: float

    @functools.cached_property
    def weights(self) -> dict[str, float]:
        """Each question word's idf; words the collection never uses weigh the most."""
        return {t: self.idf.get(t, self.max_idf) for t in self.query_tokens}

    @functools.cached_property
    def _total_weight(self) -> float:
        return sum(self.weights.values())

    @functools.cached_property
    def _matched(self) -> dict[int, set[str]]:
        return {}  # document index -> matched tokens: coverage and the refusal signals ask for the same ones

    def coverage(self, index: int) -> float:
        """The idf-weighted share of the question's words that occur in document `index`: a question
        about sourdough is not answered by an entry that shares only the word "home"."""
        total = self._total_weight
        return sum(self.weights[t] for t in self.matched(index)) / total if total else 0.0

    def known(self, token: str) -> bool:
        """Whether the collection uses `token`, itself or one of its glossary translations: an English question
        about a Chinese collection knows "click-through rate" when the collection says 点击率."""
        return any(alternative in self.idf for alternative in self.alternatives.get(token, (token,)))

    def matched(self, index: int) -> set[str]:
        """The query tokens document `index` contains, itself or translated (computed for candidates only)."""
        found = self._matched.get(index)
        if found is None:
            if not len(self.scores) or self.scores[index] <= 0:
                found = set()
            else:
                document = self.documents[index]
                found = {token for token in self.query_tokens if self.alternatives[token] & document}
            self._matched[index] = found
        return found


class LexicalIndex:
    """An in-memory BM25 index over entries, persisted as token lists keyed by a fingerprint."""

    def __init__(self, ids: Sequence[str], documents: Sequence[Sequence[str]], hashes: Sequence[str] = ()) -> None:
        import bm25s

        self.ids = list(ids)
        self.documents = [doc if isinstance(doc, list) else list(doc) for doc in documents]
        self.hashes = list(hashes)  # each entry's content hash, when known: a rebuild reuses their tokens
        self._sets = [set(doc) for doc in self.documents]
        self._bm25 = bm25s.BM25()
        if self.documents:
            self._bm25.index([doc or [""] for doc in self.documents], show_progress=False)
        frequency: dict[str, int] = {}
        for tokens in self._sets:
            for token in tokens:
                frequency[token] = frequency.get(token, 0) + 1
        n = max(len(self.documents), 1)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
        self.max_idf = math.log(1 + (n + 0.5) / 0.5)

    @classmethod
    def build(
        cls, entries: Sequence[Entry], previous: LexicalIndex | None = None, hashes: Sequence[str] | None = None
    ) -> LexicalIndex:
        """The index of `entries`; the tokens of those unchanged since `previous` are reused, so that the rebuild
        after a sync that changed a few entries tokenizes those few, not the whole collection."""
        hashes = list(hashes) if hashes is not None else [entry.content_hash() for entry in entries]
        known = dict(zip(previous.hashes, previous.documents, strict=False)) if previous is not None else {}
        documents = [known.get(key) or entry_tokens(entry) for entry, key in zip(entries, hashes, strict=True)]
        return cls([entry.id for entry in entries], documents, hashes)

    def score(self, query: str) -> LexicalScores:
        """BM25 of the question's tokens, their glossary translations and their dictionary translations
        (`knowledge.dictionary`: for recall only; coverage and `known` read the glossary's) against every
        document."""
        tokens = list(dict.fromkeys(tokenize(query)))
        expansion = expand(tokens)
        alternatives = expansion.alternatives
        wanted = {alt for alts in alternatives.values() for alt in alts} | expansion.extra
        wanted |= dictionary().translations(tokens)
        known = sorted(token for token in wanted if token in self.idf)
        if not self.documents or not known:
            scores = np.zeros(len(self.documents), dtype=np.float32)
        else:
            scores = np.asarray(self._bm25.get_scores(known), dtype=np.float32)
        return LexicalScores(scores, tokens, self.idf, alternatives, self._sets, self.max_idf)

    # -- persistence -----------------------------------------------------------------------------
    @staticmethod
    def fingerprint(entries: Sequence[Entry], hashes: Sequence[str] | None = None) -> str:
        """What the persisted token lists depend on: the tokenizer, the glossary and each entry's content
        (`hashes`: the entries' content hashes, when already computed)."""
        digest = hashlib.sha256(f"tokenizer {TOKENIZER_VERSION}\n".encode() + GLOSSARY.read_bytes())
        hashes = hashes if hashes is not None else [entry.content_hash() for entry in entries]
        for entry_id, key in sorted(zip((entry.id for entry in entries), hashes, strict=True)):
            digest.update(f"{entry_id}:{key}\n".encode())
        return digest.hexdigest()[:24]

    def save(self, path: Path, fingerprint: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        payload = {"fingerprint": fingerprint, "ids": self.ids, "documents": self.documents}
        tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load_or_build(
        cls, path: Path, entries: Sequence[Entry], *, save: bool = True, previous: LexicalIndex | None = None
    ) -> LexicalIndex:
        """The persisted index when it matches `entries`, else a fresh one (saved for next time, when `save`),
        reusing the tokens of the entries `previous` (the index loaded before) already has."""
        hashes = [entry.content_hash() for entry in entries]
        fingerprint = cls.fingerprint(entries, hashes)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if payload.get("fingerprint") == fingerprint:
                ids, documents = payload["ids"], payload["documents"]
                # Scores are read by entry position: the saved index must list exactly these entries.
                if ids == [entry.id for entry in entries] and _token_lists(documents, len(ids)):
                    return cls(ids, documents, hashes)
                _log.warning("the BM25 cache %s does not match its entries; rebuilding it", path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as error:
            _log.warning("the BM25 cache %s cannot be read (%s); rebuilding it", path, error)
        index = cls.build(entries, previous, hashes)
        if not save:
            return index
        try:
            index.save(path, fingerprint)
        except OSError as error:
            _log.warning("could not save the BM25 index to %s: %s", path, error)
        return index


def _token_lists(documents: object, count: int) -> bool:
    """Whether `documents` is a list of `count` lists of strings."""
    return (
        isinstance(documents, list)
        and len(documents) == count
        and all(isinstance(doc, list) and all(isinstance(token, str) for token in doc) for doc in documents)
    )
