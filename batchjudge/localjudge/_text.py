"""A text as the local judge's features read it: tokens, stems, sentences and their facts.

:func:`analyse` tokenises a text once into everything the features need (per sentence: names
and numbers, content stems, dates, negation scope, gendered words); :func:`document` does the
same for a document through a small LRU cache, because a document is usually judged against
several summaries in a row, and indexes it lazily, word by word as summaries ask (which
sentences hold a word, how much the word says about which sentence is meant, where a fact is
written). Everything is a few compiled regexes, string methods, sets and dict look-ups.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import pairwise
from typing import cast

from batchjudge.datasets.lexicon import MONTHS, NEGATION_CUES, NUMBER_WORDS, PRONOUN_GENDER, WEEKDAYS, date_kind

__all__ = ["NEGATION_SCOPE", "NUMBER", "STOP_STEMS", "WINDOW", "Sentence", "Text", "analyse", "document", "triples"]

WINDOW = 3
"""Sentences a summary's facts may be spread over and still count as stated together."""

NEGATION_SCOPE = 4
"""Words after a negation cue that it negates ("has *not* been charged with murder")."""

_WORD = re.compile(r"\d[\d,.]*\d|\d|\w+(?:['’](?![sS]\b)\w+)*")
"""A token: a number (with separators; a unit written onto it is a token of its own, so
"£1m" is the number 1 as "£1.7m" is 1.7) or a word (with inner apostrophes, but a
possessive ``'s`` is split off, so "Leeds's" and "Leeds" are the same name)."""
_SENTENCE_ENDS = ("! ", "? ", '." ', ".” ", ".' ", ".’ ", '!" ', '?" ', "\n")
NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_NAME = re.compile(r"\b[A-Z]\w*(?:['’](?![sS]\b)\w+)*")
_CAPITALISED_RUN = re.compile(r"[A-Z]\w*(?:\s+[A-Z]\w*)+")
"""Two or more capitalised words in a row: a multi-word name (or a title)."""

_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just me more most my myself now of off on once only or other
    our ours ourselves out over own same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up very was
    we were what when where which while who whom why will with would you your yours yourself
    yourselves said says say told according s t mr mrs ms dr one two three new last year
    years also""".split()
)
_NEGATIONS = frozenset(
    """not no never none nor nothing nobody neither without cannot n't denied deny denies
    rejected reject rejects refused refuse refuses cleared abandoned failed fail fails
    ruled""".split()
)
_SUFFIXES = ("ingly", "edly", "ings", "ing", "ies", "ied", "ed", "es", "s", "ly")

_STEMS: dict[str, str] = {}


def _stem(word: str) -> str:
    """A light suffix-stripping stem (``cuts``/``cutting`` → ``cut``), memoised."""
    stem = _STEMS.get(word)
    if stem is None:
        stem = word
        if len(word) > 4 and not word.endswith("ss"):
            for suffix in _SUFFIXES:
                if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                    stem = word[: -len(suffix)]
                    if suffix in ("ies", "ied"):
                        stem += "y"
                    elif len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                        stem = stem[:-1]  # "cutting" -> "cutt" -> "cut"
                    break
        if len(_STEMS) < 200_000:
            _STEMS[word] = stem
    return stem


STOP_STEMS = frozenset(_STOPWORDS | {_stem(w) for w in _STOPWORDS} | _NEGATIONS)
"""Stems that carry no content: stopwords (and their stems) and negation words."""


_CUE_WORDS = frozenset(NEGATION_CUES | {"n't", "n’t"})
_GENDER_WORDS = {**PRONOUN_GENDER, "mr": "m", "mrs": "f", "ms": "f", "miss": "f"}
"""Words that say a person's gender: pronouns, and the titles before a name."""
_FACT_WORDS = frozenset(_GENDER_WORDS.keys() | NUMBER_WORDS.keys() | _CUE_WORDS)
"""Tokens that need a second look when a sentence is analysed (most sentences have none)."""
_CAPITALISED_DATES = frozenset(MONTHS | WEEKDAYS)
_SPELLED = frozenset(NUMBER_WORDS.values())
"""Numbers a document may write as words."""
_TENS = frozenset(w for w, v in NUMBER_WORDS.items() if len(v) == 2 and v.endswith("0") and v != "10")
_UNITS = {"one": 1} | {w: int(v) for w, v in NUMBER_WORDS.items() if len(v) == 1}
"""Number words that make one number together: "sixty-five" (tokenised "sixty", "five") is 65."""


@dataclass(slots=True)
class Sentence:
    """One sentence: its key facts, content stems, negations, dates and gendered words."""

    keys: set[str]
    """Names (lower case, not the sentence's first word) and normalised numbers."""
    content: set[str]
    negated: bool
    tokens: list[str]
    """Every lower-cased token, to find a name or number however it is written."""
    numbers: set[str]
    """Numbers that are not years, number words included as digits ("six" is "6")."""
    dates: set[str]
    """Months and weekdays written capitalised, and years, lower-cased."""
    scope: set[str]
    """Content stems within :data:`NEGATION_SCOPE` words after a negation cue."""
    genders: list[tuple[int, str]]
    """(token position, "m" or "f") of each gendered pronoun or title."""
    first: str | None
    """The sentence's first word, lower-cased, when it is capitalised and not a stopword
    (a name or an ordinary word: only the document can tell)."""
    stems: list[str]
    """The stem of each token, aligned with ``tokens``."""
    vocab: frozenset[str] = frozenset()
    """For a document sentence: its tokens, stems and keys, to find which sentences hold a word."""


@dataclass(slots=True)
class Text:
    """The token structures of one text, built once by :func:`analyse`."""

    n_tokens: int
    stems: list[str]
    words: set[str]
    """Lower-cased surface words and normalised numbers."""
    stem_set: set[str]
    numbers: set[str]
    names: list[str]
    """Capitalised words not at a sentence start, in their original case."""
    phrases: list[str]
    """Runs of two or more capitalised words (multi-word names), in their original case."""
    negations: list[str]
    sentences: list[Sentence]
    lowered: list[str]
    """Lower-cased surface tokens, aligned with ``stems``."""
    joined: str
    """``lowered`` joined by single spaces and framed by spaces, for phrase search."""
    stem_text: str
    """``stems`` joined the same way, for n-gram search."""
    keys: set[str] = field(default_factory=set)
    """For a document: the keys of all its sentences (what it writes as names and numbers)."""
    places: dict[str, list[int]] = field(default_factory=dict)
    """Memo of :meth:`where`."""
    postings: dict[str, list[int]] = field(default_factory=dict)
    """Memo of :meth:`held`."""
    weights: dict[str, float] = field(default_factory=dict)
    """Memo of :meth:`weight`."""
    normalised: list[str] | None = None
    """``lowered`` with number words as digits, built when a number word is looked for."""

    # A document is indexed lazily, word by word as summaries ask: most of its words are
    # never asked about, and indexing them all cost more than judging.
    def held(self, word: str) -> list[int]:
        """The sentences of the document that hold ``word`` (a token, a stem or a key)."""
        found = self.postings.get(word)
        if found is None:
            found = self.postings[word] = [
                i for i, sentence in enumerate(self.sentences) if word in sentence.vocab
            ]
        return found

    def weight(self, word: str) -> float:
        """How much ``word`` says about *which* sentence is meant: its inverse sentence
        frequency, ``log(1 + sentences / sentences holding it)``; 0 when no sentence does."""
        found = self.weights.get(word)
        if found is None:
            held = self.held(word)
            found = self.weights[word] = math.log1p(len(self.sentences) / len(held)) if held else 0.0
        return found

    def where(self, fact: str) -> list[int]:
        """Where ``fact`` (a lower-cased token, a number as digits) is in ``lowered``."""
        found = self.places.get(fact)
        if found is None:
            tokens = self.lowered
            if fact.isdigit() and fact in _SPELLED:
                if self.normalised is None:
                    self.normalised = [NUMBER_WORDS.get(t, t) for t in tokens]
                tokens = self.normalised
            found = []
            at = -1
            try:
                while True:  # list.index scans in C: far faster than a comprehension
                    at = tokens.index(fact, at + 1)
                    found.append(at)
            except ValueError:
                self.places[fact] = found
        return found
    ngrams: set[str] | None = None
    """The document's bigrams and trigrams as ``" a b "`` strings, once it is seen twice."""


def _sentences(text: str) -> list[str]:
    """Split at ``.``/``!``/``?`` followed by a space (after closing quotes) and at newlines.

    Plain ``str.replace``/``split`` rather than a regex: three times faster, same result
    on news text (an abbreviation like "Mr." costs a spurious split, which is harmless here).
    """
    for end in _SENTENCE_ENDS:
        if end in text:
            text = text.replace(end, ". ")
    return text.split(". ")


def _is_cue(word: str) -> bool:
    return word in _CUE_WORDS or word.endswith(("n't", "n’t"))


def _second_look(
    low: list[str], stems: list[str]
) -> tuple[set[str], set[str], list[tuple[int, str]]]:
    """Number words (as digits), the negation scope and the gendered words of a sentence."""
    numbers: set[str] = set()
    scope: set[str] = set()
    genders: list[tuple[int, str]] = []
    for i, word in enumerate(low):
        if word in NUMBER_WORDS:
            if word in _UNITS and i and low[i - 1] in _TENS:
                continue  # counted with its tens word
            value = NUMBER_WORDS[word]
            if word in _TENS and i + 1 < len(low) and low[i + 1] in _UNITS:
                value = str(int(value) + _UNITS[low[i + 1]])
            numbers.add(value)
        elif word in _GENDER_WORDS:
            genders.append((i, _GENDER_WORDS[word]))
        elif _is_cue(word):
            scope.update(stems[i + 1 : i + 1 + NEGATION_SCOPE])
    return numbers, scope.difference(STOP_STEMS), genders


def analyse(text: str, *, summary: bool = True) -> Text:
    """Tokenise ``text`` once into everything :func:`extract` needs.

    Work is done per sentence with C-level primitives (``findall``, ``map``, set algebra);
    per-token Python runs only over sentences holding a number word, a gendered word or a
    negation. Multi-word names and negation words are listed only for a ``summary`` (a
    document is searched through ``joined`` and ``words`` instead).
    """
    stems: list[str] = []
    lowered: list[str] = []
    numbers: set[str] = set()
    names: list[str] = []
    phrases: list[str] = []
    negations: list[str] = []
    sentences: list[Sentence] = []
    stem_of = _STEMS.get
    for sentence in _sentences(text):
        low = _WORD.findall(sentence.lower())
        if not low:
            continue
        sentence_numbers = set(NUMBER.findall(sentence))
        if "," in sentence and sentence_numbers:  # "47,000" is the number 47000
            sentence_numbers = {n.replace(",", "") for n in sentence_numbers}
            low = [w.replace(",", "") if w[0].isdigit() else w for w in low]
        memo = list(map(stem_of, low))
        sentence_stems = (
            cast("list[str]", memo)
            if None not in memo
            else [st or _stem(w) for st, w in zip(memo, low, strict=True)]
        )
        # A sentence's first word is capitalised anyway, so it is never taken for a name
        # on its own ("Police said"); within a multi-word name it stays ("Greyfield Foods").
        start = sentence.lstrip("\"'“‘(")
        capitalised = _NAME.findall(sentence)
        first = None
        if capitalised and start.startswith(capitalised[0]):
            first = capitalised.pop(0).lower()
            first = None if first in _STOPWORDS else first
        runs = _CAPITALISED_RUN.findall(sentence) if summary else []
        run_at_start = bool(runs) and start.startswith(runs[0])
        sentence_names = [t for t in capitalised if t.lower() not in _STOPWORDS]
        for k, run in enumerate(runs):
            words = run.split()
            while words and words[0].lower() in _STOPWORDS:
                del words[0]
            if k == 0 and run_at_start and len(words) > 2:
                del words[0]  # "Surgeon Adrian Cole" at a sentence start names Adrian Cole
            if len(words) > 1:
                phrases.append(" ".join(words))
        negated = not _NEGATIONS.isdisjoint(low) or "n't" in sentence or "n’t" in sentence
        if negated and summary:
            negations += [w for w in low if w in _NEGATIONS or w.endswith(("n't", "n’t"))]
        # difference() walks the small side; "-=" would walk all of STOP_STEMS.
        content = set(sentence_stems).difference(STOP_STEMS)
        content -= sentence_numbers
        keys = {t.lower() for t in sentence_names}
        keys |= sentence_numbers
        dates = {n for n in sentence_numbers if date_kind(n) == "year"}
        plain_numbers = sentence_numbers - dates
        for word in keys.intersection(_CAPITALISED_DATES):
            dates.add(word)
        if first in _CAPITALISED_DATES:
            dates.add(first)
        scope: set[str] = set()
        genders: list[tuple[int, str]] = []
        if not _FACT_WORDS.isdisjoint(low) or negated:
            spelled, scope, genders = _second_look(low, sentence_stems)
            plain_numbers |= spelled
            keys |= spelled
        vocab = frozenset() if summary else frozenset(low).union(sentence_stems, keys)
        sentences.append(
            Sentence(keys, content, negated, low, plain_numbers, dates, scope, genders, first,
                      sentence_stems, vocab)
        )
        stems += sentence_stems
        lowered += low
        numbers |= sentence_numbers
        names += sentence_names
    return Text(
        n_tokens=len(stems),
        stems=stems,
        words=set(lowered),
        stem_set=set(stems),
        numbers=numbers,
        names=names,
        phrases=phrases,
        negations=negations,
        sentences=sentences,
        lowered=lowered,
        joined=" " + " ".join(lowered) + " ",
        stem_text=" " + " ".join(stems) + " ",
    )


_CACHE: OrderedDict[str, Text] = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()


def document(text: str) -> Text:
    """The analysed document, from a small LRU cache (documents repeat across rows).

    The lock keeps the cache consistent when a caller judges from several threads.
    """
    with _CACHE_LOCK:
        cached = _CACHE.get(text)
        if cached is not None:
            _CACHE.move_to_end(text)
    if cached is not None:
        if cached.ngrams is None:  # seen twice: worth indexing its n-grams
            s = cached.stems
            bigrams = {f" {a} {b} " for a, b in pairwise(s)}
            cached.ngrams = bigrams | {f" {a} {b} {c} " for a, b, c in triples(s)}
        return cached
    premise = analyse(text, summary=False)
    premise.keys = set().union(*(sentence.keys for sentence in premise.sentences))
    with _CACHE_LOCK:
        _CACHE[text] = premise
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return premise


def triples(s: list[str]) -> zip[tuple[str, str, str]]:
    return zip(s, s[1:], s[2:], strict=False)


