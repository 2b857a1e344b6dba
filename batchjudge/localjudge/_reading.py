"""Reading a summary's facts where their context is, against a document's sentences.

For each name, number and date of a summary sentence, the document sentence that best
matches the fact's context (the other words of the summary sentence, each weighted by how
rare it is in the document and by how near it is to the fact) is found; a fact that sentence
does not hold is *misplaced*, and *contradicted* when that sentence holds a different fact
of the same type (another number, another month). A gendered pronoun is contradicted when
the document writes of its referent in the other gender; a negation is compared with the
words it negates. :class:`Reading` collects what one summary's facts showed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchjudge.datasets.lexicon import NUMBER_WORDS, PRONOUN_GENDER, date_kind
from batchjudge.localjudge._text import Sentence, Text

__all__ = ["MISPLACED_BELOW", "Reading", "negation_differs", "read_facts", "read_pronouns"]

MISPLACED_BELOW = 0.5
"""A fact whose support (see :class:`Reading`) is below this is not where its context is."""


@dataclass(slots=True)
class Reading:
    """What reading a summary's facts against their matching sentences found."""

    contradicted: list[tuple[str, str]] = field(default_factory=list)
    """(the summary's fact, what its matching document sentence holds instead)."""
    misplaced: list[str] = field(default_factory=list)
    """Facts the document states, but not where their context is."""
    supports: list[float] = field(default_factory=list)
    """Each fact's support: the best context score of a sentence holding it, over the best
    context score of any sentence (1 = stated where its context is)."""
    local: list[float] = field(default_factory=list)
    """Each fact's share of its nearest summary words the document writes right beside it."""
    late: float = 0.0
    """How far into the document the summary's least prominent name is first written (0 at
    the start, 1 at the end): a summary names what its document is about, a hallucination
    often a bystander."""


def _context_scores(terms: set[str], p: Text) -> list[float]:
    """Each document sentence's match to ``terms``: the summed weights of the shared words."""
    scores = [0.0] * len(p.sentences)
    for term in terms:
        held = p.held(term)
        if held:
            weight = p.weight(term)
            for i in held:
                scores[i] += weight
    return scores


def _same_kind(fact: str, kind: str, sentence: Sentence) -> list[str]:
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
_Index = dict[str, tuple[float, list[int]]]
"""For each of those words: its weight in the document and the sentences holding it."""


def _terms(sentence: Sentence, p: Text) -> tuple[_Terms, _Index]:
    """(token position, words) for every token of ``sentence`` that carries content or is a
    key, keeping only words some document sentence holds, and those words' weights and
    sentences (computed once per summary sentence, shared by all its facts)."""
    out: _Terms = []
    index: _Index = {}
    for i, (token, stem) in enumerate(zip(sentence.tokens, sentence.stems, strict=True)):
        is_content = stem in sentence.content
        is_key = token in sentence.keys or (i == 0 and token == sentence.first)
        if is_content or is_key:
            words = (stem,) if is_content and not is_key else (token,) if not is_content else (stem, token)
            held = tuple(w for w in words if p.held(w))
            for word in held:
                index[word] = (p.weight(word), p.held(word))
            out.append((i, held, False))
        elif token in NUMBER_WORDS:  # a spelled number is a fact's place, not another's context
            out.append((i, (), True))
    return out, index


def _context(sentence: Sentence, fact: str, positions: list[int], terms: _Terms) -> dict[str, int]:
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


def _fact_scores(context: dict[str, int], index: _Index, sentences: int) -> list[float]:
    """Each document sentence's match to a fact's ``context``: the summed weights of the
    words they share, words near the fact counting more than words far from it."""
    scores = [0.0] * sentences
    for term, away in context.items():
        weight, held = index[term]
        weight *= _near(away)
        for i in held:
            scores[i] += weight
    return scores


LOCAL_WORDS = 3
"""Content words on either side of a fact in the summary that make its immediate context."""
LOCAL_SPAN = 6
"""Tokens on either side of a fact in the document searched for that immediate context."""


def _local_support(fact: str, context: dict[str, int], index: _Index, p: Text) -> float | None:
    """How much of a fact's immediate context the document writes right beside the fact:
    the best, over the fact's places in the document, of the weighted share of the
    summary's nearest words found within :data:`LOCAL_SPAN` tokens of it. None when the
    summary writes nothing beside the fact that the document has."""
    near = {term: index[term][0] for term, away in context.items() if away <= LOCAL_WORDS}
    total = sum(near.values())
    if total <= 0.0:
        return None
    best = 0.0
    for at in p.where(fact):
        lo, hi = max(0, at - LOCAL_SPAN), at + LOCAL_SPAN + 1
        window = set(p.lowered[lo:hi]).union(p.stems[lo:hi])
        best = max(best, sum(w for term, w in near.items() if term in window))
    return best / total


def _facts(sentence: Sentence, p: Text) -> list[tuple[str, str, list[int]]]:
    """(fact, kind, token positions) of each name, number and date of a summary sentence, in
    the order of their first position."""
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
    facts = [(fact, kind, positions[fact]) for fact, kind in found.items() if positions[fact]]
    # In the order the sentence states them: the keys are a set, whose order changes with the
    # process's hash seed, and the reason names facts in this order.
    return sorted(facts, key=lambda item: item[2][0])


def read_facts(sentence: Sentence, p: Text, reading: Reading) -> None:
    """Check each name, number and date of one summary sentence where its context is."""
    facts = _facts(sentence, p)
    terms, index = _terms(sentence, p) if facts else ([], {})
    for fact, kind, positions in facts:
        held = p.held(fact)
        if not held:
            continue  # not in the document at all: the unsupported_* features count it
        if kind == "name":
            places = p.where(fact)
            if places:
                reading.late = max(reading.late, places[0] / p.n_tokens)
        context = _context(sentence, fact, positions, terms)
        local = _local_support(fact, context, index, p)
        if local is not None:
            reading.local.append(local)
        scores = _fact_scores(context, index, len(p.sentences))
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


def _region_genders(sentence: Sentence, position: int, p: Text) -> str:
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


def read_pronouns(sentence: Sentence, p: Text, reading: Reading) -> None:
    """A pronoun is contradicted when the document writes of its referent in the other gender."""
    for position, gender in sentence.genders:
        word = sentence.tokens[position]
        if word not in PRONOUN_GENDER:
            continue  # a title: it names the gender, it does not refer
        said = _region_genders(sentence, position, p)
        other = "f" if gender == "m" else "m"
        if said.count(other) > said.count(gender):
            reading.contradicted.append((word, "she" if other == "f" else "he"))


def negation_differs(sentence: Sentence, best: Sentence) -> bool:
    """Whether the summary sentence negates what its best document sentence affirms, or the
    reverse: the words the two share, negated in one and not in the other; for a negation
    of words the document sentence lacks, whether that sentence negates anything at all."""
    shared = sentence.content & best.content
    if (sentence.scope ^ best.scope) & shared:
        return True
    return sentence.negated and not sentence.scope & shared and not best.negated


