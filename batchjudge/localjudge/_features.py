"""Features of a summary against its document: what the local judge's model reads.

A summary that invents facts tends to show it on the surface: a number or a name the
document never mentions, a negation the document does not make, content words and word
sequences that are not in the document. The usual hallucination of an abstractive
summariser is subtler: a name, number or date that *is* in the document, taken from
another sentence, or a pronoun of the wrong gender. So the judge also *reads*: for each fact
of the summary (a name, a number, a date, a pronoun and its referent, a negation) it finds
the document sentence that best matches the fact's context (the rest of the summary
sentence, each word weighted by how rare it is in the document) and asks whether that
sentence holds this fact, or a different one of the same type. :func:`extract` measures
all of this as one number per :data:`FEATURE_NAMES` entry and keeps the evidence, so the
judge can say *what* looked wrong.

Everything is a few compiled regexes, string methods, sets and dict look-ups; a document's
token structures (and an index of which sentences hold each word) are computed once and
cached, because a document is usually judged against several summaries in a row.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import pairwise
from typing import cast

from batchjudge.datasets.lexicon import (
    DEMONYMS,
    MONTHS,
    NEGATION_CUES,
    NUMBER_WORDS,
    PRONOUN_GENDER,
    WEEKDAYS,
    date_kind,
)

__all__ = ["FEATURE_NAMES", "FEATURE_SIGNS", "WINDOW", "Evidence", "extract"]

FEATURE_NAMES = (
    "unsupported_numbers",
    "unsupported_names",
    "unsupported_name_phrases",
    "unsupported_negations",
    "negation_mismatch",
    "contradicted_facts",
    "misplaced_facts",
    "fact_support",
    "local_support",
    "late_mention",
    "unsupported_content",
    "bigram_precision",
    "trigram_precision",
    "key_alignment",
    "window_alignment",
    "content_alignment",
    "log_length_ratio",
    "log_summary_length",
)
"""The order of the feature vector :func:`extract` returns."""

FEATURE_SIGNS = (-1, -1, -1, -1, -1, -1, -1, 1, 1, -1, -1, 1, 1, 1, 1, 1, 0, 0)
"""How each feature may move P(consistent): -1 only down, +1 only up, 0 either way."""

WINDOW = 3
"""Sentences a summary's facts may be spread over and still count as stated together."""

MISPLACED_BELOW = 0.5
"""A fact whose support (see :class:`_Reading`) is below this is not where its context is."""

NEGATION_SCOPE = 4
"""Words after a negation cue that it negates ("has *not* been charged with murder")."""

_WORD = re.compile(r"\d[\d,.]*\d|\w+(?:['’](?![sS]\b)\w+)*")
"""A token: a number (with separators) or a word (with inner apostrophes, but a possessive
``'s`` is split off, so "Leeds's" and "Leeds" are the same name)."""
_SENTENCE_ENDS = ("! ", "? ", '." ', ".” ", ".' ", ".’ ", '!" ', '?" ', "\n")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
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


_STOP_STEMS = frozenset(_STOPWORDS | {_stem(w) for w in _STOPWORDS} | _NEGATIONS)
"""Stems that carry no content: stopwords (and their stems) and negation words."""


_CUE_WORDS = frozenset(NEGATION_CUES | {"n't", "n’t"})
_GENDER_WORDS = {**PRONOUN_GENDER, "mr": "m", "mrs": "f", "ms": "f", "miss": "f"}
"""Words that say a person's gender: pronouns, and the titles before a name."""
_FACT_WORDS = frozenset(_GENDER_WORDS.keys() | NUMBER_WORDS.keys() | _CUE_WORDS)
"""Tokens that need a second look when a sentence is analysed (most sentences have none)."""
_CAPITALISED_DATES = frozenset(MONTHS | WEEKDAYS)
_SPELLED = frozenset(NUMBER_WORDS.values())
"""Numbers a document may write as words."""


@dataclass(slots=True)
class _Sentence:
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
class _Text:
    """The token structures of one text, built once by :func:`_analyse`."""

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
    sentences: list[_Sentence]
    lowered: list[str]
    """Lower-cased surface tokens, aligned with ``stems``."""
    joined: str
    """``lowered`` joined by single spaces and framed by spaces, for phrase search."""
    stem_text: str
    """``stems`` joined the same way, for n-gram search."""
    keys: set[str] = field(default_factory=set)
    """For a document: the keys of all its sentences (what it writes as names and numbers)."""
    windows: list[set[str]] = field(default_factory=list)
    """For a document: the keys of every run of :data:`WINDOW` consecutive sentences."""
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
            numbers.add(NUMBER_WORDS[word])
        elif word in _GENDER_WORDS:
            genders.append((i, _GENDER_WORDS[word]))
        elif _is_cue(word):
            scope.update(stems[i + 1 : i + 1 + NEGATION_SCOPE])
    return numbers, scope.difference(_STOP_STEMS), genders


def _analyse(text: str, *, summary: bool = True) -> _Text:
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
    sentences: list[_Sentence] = []
    stem_of = _STEMS.get
    for sentence in _sentences(text):
        low = _WORD.findall(sentence.lower())
        if not low:
            continue
        sentence_numbers = set(_NUMBER.findall(sentence))
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
        # difference() walks the small side; "-=" would walk all of _STOP_STEMS.
        content = set(sentence_stems).difference(_STOP_STEMS)
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
            _Sentence(keys, content, negated, low, plain_numbers, dates, scope, genders, first,
                      sentence_stems, vocab)
        )
        stems += sentence_stems
        lowered += low
        numbers |= sentence_numbers
        names += sentence_names
    return _Text(
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


_CACHE: OrderedDict[str, _Text] = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()


def _premise(text: str) -> _Text:
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
            cached.ngrams = bigrams | {f" {a} {b} {c} " for a, b, c in _triples(s)}
        return cached
    premise = _analyse(text, summary=False)
    keys = [sentence.keys for sentence in premise.sentences]
    premise.keys = set().union(*keys)
    premise.windows = [
        set().union(*keys[i : i + WINDOW]) for i in range(max(1, len(keys) - WINDOW + 1))
    ]
    with _CACHE_LOCK:
        _CACHE[text] = premise
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return premise


@dataclass(slots=True)
class Evidence:
    """What :func:`extract` found unsupported or contradicted, for the judge's ``reason``."""

    numbers: list[str]
    names: list[str]
    negations: list[str]
    misplaced: list[str]
    """Names, numbers or dates the document states, but not where the claim's context is."""
    words: list[str]
    """Content words absent from the document."""
    contradicted: list[tuple[str, str]] = field(default_factory=list)
    """(the summary's fact, what the matching document sentence says instead)."""


def _precision(grams: set[str], document: _Text) -> float:
    """The fraction of the summary's distinct n-grams (as ``" a b "``) found in the document.

    A document seen once is searched as a string (``" a b " in stem_text`` finds exactly
    the n-grams a set would); a document seen again has its n-gram set built once.
    """
    if not grams:
        return 1.0
    if document.ngrams is not None:
        return len(grams & document.ngrams) / len(grams)
    return sum(g in document.stem_text for g in grams) / len(grams)


def _triples(s: list[str]) -> zip[tuple[str, str, str]]:
    return zip(s, s[1:], s[2:], strict=False)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(slots=True)
class _Reading:
    """What reading a summary's facts against their matching sentences found."""

    contradicted: list[tuple[str, str]] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)
    supports: list[float] = field(default_factory=list)
    local: list[float] = field(default_factory=list)
    late: float = 0.0
    """How far into the document the summary's least prominent name is first written (0 at
    the start, 1 at the end): a summary names what its document is about, a hallucination
    often a bystander."""
    """Each fact's support: the best context score of a sentence holding it, over the best
    context score of any sentence (1 = stated where its context is)."""


def _context_scores(terms: set[str], p: _Text) -> list[float]:
    """Each document sentence's match to ``terms``: the summed weights of the shared words."""
    scores = [0.0] * len(p.sentences)
    for term in terms:
        held = p.held(term)
        if held:
            weight = p.weight(term)
            for i in held:
                scores[i] += weight
    return scores


def _same_kind(fact: str, kind: str, sentence: _Sentence) -> list[str]:
    """The facts of ``kind`` in ``sentence`` other than ``fact``."""
    if kind == "number":
        return sorted(sentence.numbers - {fact})
    return sorted(d for d in sentence.dates if d != fact and date_kind(d) == kind)


def _near(distance: int) -> float:
    """How much a context word counts for a fact ``distance`` words away from it."""
    return 1.0 if distance <= 3 else 0.6 if distance <= 6 else 0.3


_Terms = list[tuple[int, tuple[str, ...], bool]]
"""A summary sentence's content-bearing positions with the words there the document has,
and whether the position is only a spelled number (a place of a fact, no context)."""


def _terms(sentence: _Sentence, p: _Text) -> _Terms:
    """(token position, words) for every token of ``sentence`` that carries content or is a
    key, keeping only words some document sentence holds (computed once per sentence)."""
    out: _Terms = []
    for i, (token, stem) in enumerate(zip(sentence.tokens, sentence.stems, strict=True)):
        is_content = stem in sentence.content
        is_key = token in sentence.keys or (i == 0 and token == sentence.first)
        if is_content or is_key:
            words = (stem,) if is_content and not is_key else (token,) if not is_content else (stem, token)
            out.append((i, tuple(w for w in words if p.held(w)), False))
        elif token in NUMBER_WORDS:  # a spelled number is a fact's place, not another's context
            out.append((i, (), True))
    return out


def _context(sentence: _Sentence, fact: str, positions: list[int], terms: _Terms) -> dict[str, int]:
    """The words around ``fact`` in the summary sentence that the document has, each with its
    distance to the fact. Distances count only words that carry content (``terms``), so
    "has not been charged" is as near as "has been charged". The fact itself and the rest of
    its name ("Routis" for "Christopher") are left out: a name cannot vouch for its own place."""
    own = set(positions)
    for start in positions:
        for step in (-1, 1):
            i = start + step
            while 0 <= i < len(sentence.tokens) and sentence.tokens[i] in sentence.keys:
                own.add(i)
                i += step
    kept = [(i, words) for i, words, spelled in terms if not spelled or i in own]
    at = [k for k, (i, _) in enumerate(kept) if i in positions]
    if not at:
        return {}
    distance: dict[str, int] = {}
    for k, (i, words) in enumerate(kept):
        if i in own or not words:
            continue
        away = min(abs(k - j) for j in at)
        for word in words:
            if word != fact and away < distance.get(word, 1 << 30):
                distance[word] = away
    return distance


def _fact_scores(context: dict[str, int], p: _Text) -> list[float]:
    """Each document sentence's match to a fact's ``context``: the summed weights of the
    words they share, words near the fact counting more than words far from it."""
    scores = [0.0] * len(p.sentences)
    for term, away in context.items():
        weight = p.weight(term) * _near(away)
        for i in p.held(term):
            scores[i] += weight
    return scores


LOCAL_WORDS = 3
"""Content words on either side of a fact in the summary that make its immediate context."""
LOCAL_SPAN = 6
"""Tokens on either side of a fact in the document searched for that immediate context."""


def _local_support(fact: str, context: dict[str, int], p: _Text) -> float | None:
    """How much of a fact's immediate context the document writes right beside the fact:
    the best, over the fact's places in the document, of the weighted share of the
    summary's nearest words found within :data:`LOCAL_SPAN` tokens of it. None when the
    summary writes nothing beside the fact that the document has."""
    near = {term: p.weight(term) for term, away in context.items() if away <= LOCAL_WORDS}
    total = sum(near.values())
    if total <= 0.0:
        return None
    best = 0.0
    for at in p.where(fact):
        lo, hi = max(0, at - LOCAL_SPAN), at + LOCAL_SPAN + 1
        window = set(p.lowered[lo:hi]).union(p.stems[lo:hi])
        best = max(best, sum(w for term, w in near.items() if term in window))
    return best / total


def _facts(sentence: _Sentence, p: _Text) -> list[tuple[str, str, list[int]]]:
    """(fact, kind, token positions) of each name, number and date of a summary sentence."""
    found: dict[str, str] = dict.fromkeys(sentence.numbers, "number")
    found.update((d, date_kind(d) or "date") for d in sentence.dates)
    for key in sentence.keys:
        found.setdefault(key, "name")
    if sentence.first is not None and sentence.first in p.keys:
        found.setdefault(sentence.first, "name")
    if not found:
        return []
    positions: dict[str, list[int]] = {fact: [] for fact in found}
    for i, token in enumerate(sentence.tokens):
        fact = NUMBER_WORDS.get(token, token)
        if fact in positions:
            positions[fact].append(i)
    return [(fact, kind, positions[fact]) for fact, kind in found.items() if positions[fact]]


def _read_facts(sentence: _Sentence, p: _Text, reading: _Reading) -> None:
    """Check each name, number and date of one summary sentence where its context is."""
    facts = _facts(sentence, p)
    terms = _terms(sentence, p) if facts else []
    for fact, kind, positions in facts:
        held = p.held(fact)
        if not held:
            continue  # not in the document at all: the unsupported_* features count it
        if kind == "name":
            places = p.where(fact)
            if places:
                reading.late = max(reading.late, places[0] / p.n_tokens)
        context = _context(sentence, fact, positions, terms)
        local = _local_support(fact, context, p)
        if local is not None:
            reading.local.append(local)
        scores = _fact_scores(context, p)
        best_score = max(scores)
        if best_score <= 0.0:
            continue  # nothing else in the sentence points anywhere
        support = max(scores[i] for i in held) / best_score
        reading.supports.append(support)
        if support >= MISPLACED_BELOW:
            continue
        best = scores.index(best_score)
        if support >= MISPLACED_BELOW / 2 and any(abs(i - best) <= 1 for i in held):
            continue  # stated in a neighbouring sentence: still near its context
        others = [] if kind == "name" else _same_kind(fact, kind, p.sentences[best])
        if others:
            reading.contradicted.append((fact, others[0]))
        else:
            reading.misplaced.append(fact)


def _region_genders(sentence: _Sentence, position: int, p: _Text) -> str:
    """The genders the document uses where the person a pronoun names is written about.

    The pronoun's referent is the nearest name before it in the summary sentence (else
    after it); the document's sentences holding that name and the ones after them are
    where the document writes about that person. Without a referent found in the
    document, the sentence best matching the summary sentence (and the next) stand in.
    """
    names = [
        (i, word) for i, word in enumerate(sentence.tokens)
        if (word in sentence.keys or word == sentence.first) and word in p.keys and not word[0].isdigit()
    ]  # fmt: skip
    before = [word for i, word in names if i < position]
    referent = before[-1] if before else next((word for i, word in names if i > position), None)
    if referent is not None:
        region = {j for i in p.held(referent) for j in (i, i + 1)}
    else:
        scores = _context_scores(sentence.content | sentence.keys, p)
        best = scores.index(max(scores))
        region = {best, best + 1}
    last = len(p.sentences)
    return "".join(g for j in sorted(region) if j < last for _, g in p.sentences[j].genders)


def _read_pronouns(sentence: _Sentence, p: _Text, reading: _Reading) -> None:
    """A pronoun is contradicted when the document writes of its referent in the other gender."""
    for position, gender in sentence.genders:
        word = sentence.tokens[position]
        if word not in PRONOUN_GENDER:
            continue  # a title: it names the gender, it does not refer
        said = _region_genders(sentence, position, p)
        other = "f" if gender == "m" else "m"
        if said.count(other) > said.count(gender):
            reading.contradicted.append((word, "she" if other == "f" else "he"))


def _negation_mismatch(sentence: _Sentence, best: _Sentence) -> bool:
    """Whether the summary sentence negates what its best document sentence affirms, or the
    reverse: the words the two share, negated in one and not in the other; for a negation
    of words the document sentence lacks, whether that sentence negates anything at all."""
    shared = sentence.content & best.content
    if (sentence.scope ^ best.scope) & shared:
        return True
    return sentence.negated and not sentence.scope & shared and not best.negated


_COUNTRIES = {country: [d for d, c in DEMONYMS.items() if c == country] for country in set(DEMONYMS.values())}


def _name_in(name: str, p: _Text) -> bool:
    """Whether the document writes ``name``, or its country for a nationality ("Japanese" and
    "Japan"), or a nationality for a country."""
    if name in p.words:
        return True
    country = DEMONYMS.get(name)
    if country is not None:
        return country in p.words
    return any(demonym in p.words for demonym in _COUNTRIES.get(name, ()))


def _phrase_in(words: list[str], p: _Text) -> bool:
    """Whether the document writes a multi-word name, once its leading descriptive words are
    set aside: words the document writes in lower case ("Actress Knightley") and
    nationalities ("Italian Molinari"), each of which is still checked on its own."""
    while len(words) > 1 and (
        words[0] in DEMONYMS or (words[0] in p.words and words[0] not in p.keys)
    ):
        words = words[1:]
    return len(words) == 1 or " " + " ".join(words) + " " in p.joined


def extract(premise: str, hypothesis: str) -> tuple[list[float], Evidence]:
    """The feature vector (ordered as :data:`FEATURE_NAMES`) and the evidence behind it."""
    p = _premise(premise)
    h = _analyse(hypothesis)
    numbers = _unique([w for w in h.lowered if w in h.numbers and w not in p.numbers])
    names = _unique([n for n in h.names if not _name_in(n.lower(), p)])
    phrases = [ph for ph in _unique(h.phrases) if not _phrase_in(ph.lower().split(), p)]
    negations = _unique([n for n in h.negations if n not in p.words])
    content = [w for w in h.stems if w not in _STOP_STEMS and w not in h.numbers]
    novel = [w for w in content if w not in p.stem_set]

    # Align each summary sentence with its best document sentence (keys, content, negation)
    # and its names and numbers with the best window of WINDOW consecutive sentences, then
    # read each of its facts where its own context is.
    key_alignment = content_alignment = window_alignment = 1.0
    negation_mismatch = 0.0
    reading = _Reading()
    for sentence in h.sentences:
        keys = sentence.keys
        if keys and p.windows:
            counts = [len(keys & window) for window in p.windows]
            found = keys & p.windows[counts.index(max(counts))]
            window_alignment = min(window_alignment, len(found) / len(keys))
        best, best_score, best_keys = None, -1.0, 0.0
        n_keys, n_content = len(sentence.keys), len(sentence.content)
        for candidate in p.sentences:
            k = len(sentence.keys & candidate.keys) / n_keys if n_keys else 1.0
            c = len(sentence.content & candidate.content) / n_content if n_content else 1.0
            if k + c > best_score:
                best, best_score, best_keys = candidate, k + c, k
        if best is None:
            key_alignment = content_alignment = 0.0
            continue
        key_alignment = min(key_alignment, best_keys)
        content_alignment = min(content_alignment, best_score - best_keys)
        if _negation_mismatch(sentence, best):
            negation_mismatch += 1.0
        _read_facts(sentence, p, reading)
        if sentence.genders:
            _read_pronouns(sentence, p, reading)

    s = h.stems
    features = [
        float(min(len(numbers), 3)),
        float(min(len(names), 3)),
        float(min(len(phrases), 3)),
        float(min(len(negations), 3)),
        negation_mismatch,
        float(min(len(reading.contradicted), 3)),
        float(min(len(reading.misplaced), 3)),
        sum(reading.supports) / len(reading.supports) if reading.supports else 1.0,
        sum(reading.local) / len(reading.local) if reading.local else 1.0,
        reading.late,
        len(novel) / len(content) if content else 0.0,
        _precision({f" {a} {b} " for a, b in pairwise(s)}, p),
        _precision({f" {a} {b} {c} " for a, b, c in _triples(s)}, p),
        key_alignment,
        window_alignment,
        content_alignment,
        math.log((h.n_tokens + 1) / (p.n_tokens + 1)),
        math.log1p(h.n_tokens),
    ]
    in_phrases = {word for phrase in phrases for word in phrase.split()}
    surface = {n.lower(): n for n in h.names}
    surface.update((n.replace(",", ""), n) for n in reversed(_NUMBER.findall(hypothesis)))
    novel_set = set(novel)
    evidence = Evidence(
        numbers=[surface.get(n, n) for n in numbers],
        names=[*phrases, *(n for n in names if n not in in_phrases)],
        negations=negations,
        misplaced=_unique([surface.get(k, k) for k in reading.misplaced]),
        words=_unique([w for w, st in zip(h.lowered, s, strict=True) if st in novel_set]),
        contradicted=[(surface.get(a, a), b) for a, b in dict.fromkeys(reading.contradicted)],
    )
    return features, evidence
