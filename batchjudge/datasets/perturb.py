"""Inconsistent twins of consistent summaries, made by rule (the FactCC transformations).

Each consistent summary of a dataset gets up to one twin per kind of error:

- ``entity_swap``: a name the summary shares with the document is replaced by another name
  of the document, of the same type where one exists (person, place, organisation, told
  apart by how the document uses them);
- ``number_swap``: a number the document states is replaced by another number of the same
  document (a changed value when the document has no other);
- ``date_swap``: a month, weekday or year is replaced by another of its kind from the
  document (a shifted one when the document has none);
- ``pronoun_swap``: every he/him/his/himself becomes she/her/hers/herself, or the reverse;
- ``negation``: a ``not`` is added after an auxiliary verb, or an existing one removed.

Names, numbers and dates are swapped only where the document states them: a fact the
document lacks cannot be checked against it, so its twin would test nothing. Replacements
come from the same document, as in the usual hallucination of an abstractive summariser,
which a judge that only asks "is this word in the document?" cannot see.

Every twin keeps its original's ``doc_id``, ``source`` and ``split``, has ``target`` 0, and
records its ``kind``, the ``pair_id`` it shares with its original and the ``perturbation``
made (``"Leeds -> Bristol"``). Randomness is seeded per (seed, row id, kind), so a row's
twins never depend on the rows around it.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from batchjudge.datasets.lexicon import (
    AUXILIARIES,
    CONTRACTIONS,
    MONTHS,
    NUMBER_WORDS,
    PRONOUN_GENDER,
    PRONOUN_SWAP,
    WEEKDAYS,
    date_kind,
)
from batchjudge.datasets.schema import CONSISTENT, INCONSISTENT, dataset_table, stable_id
from batchjudge.errors import ConfigError, InputError

__all__ = ["KINDS", "PERTURB_COLUMNS", "Perturbation", "claim_sentences", "perturb_summary", "perturb_table"]

KINDS = ("entity_swap", "number_swap", "date_swap", "pronoun_swap", "negation")
"""Every kind of twin, in the order they are made."""

PERTURB_COLUMNS = ("kind", "pair_id", "perturbation", "claim")
"""The columns a perturbed dataset carries after the dataset schema's."""


@dataclass(frozen=True, slots=True)
class Perturbation:
    """One twin: its kind, its text, and what was replaced by what."""

    kind: str
    hypothesis: str
    before: str
    after: str


# --------------------------------------------------------------------------- reading text
_NUMBER = re.compile(r"(?<![\w.,])\d(?:[\d,]*\d)?(?:\.\d+)?(?![\d])")
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")
_RUN = re.compile(r"(?<![\w'’-])[A-Z][A-Za-z]*(?: (?:[A-Z][A-Za-z]*|of|de|van|von|al))*(?<! of)(?<! de)(?<! van)(?<! von)(?<! al)(?![\w-])")
"""A run of capitalised words (a name: "Dundee United", "Bank of England")."""
_SENTENCE_START = re.compile(r"(?:^|[.!?]['\"”’]?\s+|\n)[\"'“‘(]*$")
_LEADING = frozenset(
    """a an the this that these those it its he she his her they their there here but and or
    so if when while after before as at in on of for from by with to mr mrs ms dr we our
    you your my""".split()
)
"""Words that open a capitalised run without being part of a name (pronouns are no names:
"We" after an opening quote is written capitalised mid-sentence)."""
_TITLES = frozenset(
    """mr mrs ms miss dr sir lord lady prof professor president judge manager coach boss chief
    executive minister secretary captain striker midfielder defender goalkeeper player actor
    actress singer star leader chairman spokesman spokeswoman officer inspector detective
    sergeant constable councillor mp msp mayor bishop lawyer founder author writer artist
    champion premier senator governor candidate chancellor""".split()
)
"""Words written right before a person's name."""
_SPEECH = frozenset("said says told added explained warned".split())
_PLACE_CUES = frozenset("in at from near to across outside".split())
_ORG_WORDS = frozenset(
    """council police party university college bank group ltd plc united city fc club trust
    association company corporation ministry department office service agency commission
    committee board foundation airways airlines rail energy foods motors health hospital
    school court government network institute society union league federation authority
    force army navy museum church news times post channel""".split()
)
_DETERMINERS = frozenset("a an the any some no to been".split())
_FUNCTION = frozenset(
    """and or but to in on at for with as by from that than after before of into over about
    was were is are has have had will would""".split()
)


def _at_sentence_start(text: str, start: int) -> bool:
    return bool(_SENTENCE_START.search(text[max(0, start - 4) : start])) or start == 0


@dataclass(frozen=True, slots=True)
class _Name:
    text: str
    start: int
    end: int


def _names(text: str) -> list[_Name]:
    """Capitalised runs of ``text`` without leading function words ("The", "But")."""
    found: list[_Name] = []
    for match in _RUN.finditer(text):
        words = match.group().split(" ")
        start = match.start()
        while words and words[0].lower() in _LEADING:
            start += len(words[0]) + 1
            del words[0]
        if not words:
            continue
        name = " ".join(words)
        if name.lower() in MONTHS or name.lower() in WEEKDAYS or name == "I":
            continue
        found.append(_Name(name, start, start + len(name)))
    return found


def _document_names(document: str) -> dict[str, str]:
    """Each name of the document with its type: ``person``, ``place``, ``org`` or ``other``.

    A one-word run that opens a sentence counts only when the document also writes it
    capitalised mid-sentence (so "Following" is not a name, "Murdoch" is).
    """
    runs = _names(document)
    inside = {n.text for n in runs if not _at_sentence_start(document, n.start)}
    inside_words = {w for name in inside for w in name.split()}
    types: dict[str, str] = {}
    for run in runs:
        if run.text not in inside and " " not in run.text and run.text not in inside_words:
            continue
        before = _WORD.findall(document[max(0, run.start - 24) : run.start])
        after = _WORD.findall(document[run.end : run.end + 16])
        previous = before[-1].lower() if before else ""
        kind = types.get(run.text, "other")
        if previous in _TITLES or (after and after[0].lower() in _SPEECH):
            kind = "person"
        elif run.text.split()[-1].lower() in _ORG_WORDS:
            kind = "org"
        elif previous in _PLACE_CUES and kind == "other":
            kind = "place"
        types[run.text] = kind
    people = {name.split()[-1] for name, kind in types.items() if kind == "person"}
    for name in types:  # "Neil Warnock" and "Warnock" name one person
        if name.split()[-1] in people:
            types[name] = "person"
    return types


def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(phrase)}(?![\w])", text) is not None


def _replace(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


# --------------------------------------------------------------------------- the kinds
def _entity_swap(premise: str, hypothesis: str, rng: random.Random) -> Perturbation | None:
    document = _document_names(premise)
    used = {w.lower() for n in _names(hypothesis) for w in n.text.split()}
    grounded = [n for n in _names(hypothesis) if n.text in document or (
        _contains(premise, n.text) and (" " in n.text or not _at_sentence_start(hypothesis, n.start))
    )]  # a capitalised word opening the summary is a name only if the document uses it as one
    if not grounded:
        return None
    name = rng.choice(grounded)
    kind = document.get(name.text, "other")
    words = len(name.text.split())
    others = [
        other for other in document
        if not used & {w.lower() for w in other.split()} and other.lower() not in hypothesis.lower()
    ]  # fmt: skip
    # The same type where the document has one; a person only ever for a person.
    same = [o for o in others if document[o] == kind]
    pool = same if same or kind == "person" else [o for o in others if document[o] != "person"]
    if not pool:
        return None
    new = rng.choice(sorted(pool))
    if kind == "person" and words == 1 and " " in new:
        new = new.split()[-1]  # a surname for a surname
    return Perturbation("entity_swap", _replace(hypothesis, name.start, name.end, new), name.text, new)


def _value(token: str) -> str:
    return NUMBER_WORDS.get(token.lower(), token.replace(",", ""))


def _numbers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of every number that is not a year: digits or number words."""
    found = [(m.start(), m.end(), m.group()) for m in _NUMBER.finditer(text) if date_kind(m.group()) != "year"]
    found += [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text) if m.group().lower() in NUMBER_WORDS]
    return sorted(found)


def _changed_number(token: str, rng: random.Random) -> str:
    """A different number written like ``token`` (for documents with no other number)."""
    if token.lower() in NUMBER_WORDS:
        words = sorted(w for w in NUMBER_WORDS if NUMBER_WORDS[w] != NUMBER_WORDS[token.lower()])
        new = rng.choice(words)
        return new.capitalize() if token[0].isupper() else new
    digits = token.replace(",", "")
    if "." in digits:
        whole, fraction = digits.split(".")
        return f"{whole}.{(int(fraction[-1]) + rng.randint(1, 8)) % 10}".rstrip(".") if fraction else digits
    value = int(digits)
    new_value = value + rng.choice((1, 2, 3, 5)) if value < 20 else value * rng.choice((2, 3)) // 2 + rng.randint(1, 9)
    return f"{new_value:,}" if "," in token else str(new_value)


def _number_swap(premise: str, hypothesis: str, rng: random.Random) -> Perturbation | None:
    document = _numbers(premise)
    values = {_value(t) for _, _, t in document}
    grounded = [n for n in _numbers(hypothesis) if _value(n[2]) in values]
    if not grounded:
        return None
    start, end, token = rng.choice(grounded)
    in_summary = {_value(t) for _, _, t in _numbers(hypothesis)}
    others = sorted({t for _, _, t in document if _value(t) not in in_summary})
    words = token.lower() in NUMBER_WORDS
    same_form = [t for t in others if (t.lower() in NUMBER_WORDS) == words]
    pool = same_form or others
    new = rng.choice(pool) if pool else _changed_number(token, rng)
    if new.lower() in NUMBER_WORDS:
        new = new.capitalize() if token[0].isupper() else new.lower()
    return Perturbation("number_swap", _replace(hypothesis, start, end, new), token, new)


_DATE_TOKEN = re.compile(r"\b(?:[A-Z][a-z]+|\d{4})\b")


def _dates(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, text, kind) of months, weekdays and years; "May" only beside a number."""
    found = []
    for match in _DATE_TOKEN.finditer(text):
        token = match.group()
        kind = date_kind(token.lower())
        if kind is None or (kind == "month" and token == "May" and not re.search(
            r"\d\s*$", text[max(0, match.start() - 4) : match.start()]
        ) and not re.match(r"\s*\d", text[match.end() : match.end() + 3])):
            continue
        found.append((match.start(), match.end(), token, kind))
    return found


def _shifted_date(token: str, kind: str, rng: random.Random) -> str:
    if kind == "year":
        return str(int(token) + rng.choice((-3, -2, -1, 1, 2, 3)))
    pool = sorted((MONTHS if kind == "month" else WEEKDAYS) - {token.lower()})
    return rng.choice(pool).capitalize()


def _date_swap(premise: str, hypothesis: str, rng: random.Random) -> Perturbation | None:
    in_document = _dates(premise)
    stated = {t for _, _, t, _ in in_document}
    grounded = [d for d in _dates(hypothesis) if d[2] in stated]
    if not grounded:
        return None
    start, end, token, kind = rng.choice(grounded)
    in_summary = {t for _, _, t, _ in _dates(hypothesis)}
    pool = sorted({t for _, _, t, k in in_document if k == kind and t not in in_summary})
    new = rng.choice(pool) if pool else _shifted_date(token, kind, rng)
    return Perturbation("date_swap", _replace(hypothesis, start, end, new), token, new)


def _swapped_pronoun(word: str, following: str | None) -> str:
    low = word.lower()
    if low == "her":
        possessive = following is not None and following.lower() not in _FUNCTION
        new = "his" if possessive else "him"
    else:
        new = PRONOUN_SWAP[low]
    return new.capitalize() if word[0].isupper() else new


def _pronoun_swap(premise: str, hypothesis: str, rng: random.Random) -> Perturbation | None:
    del premise  # the document's own pronouns say which gender was right; any swap is wrong
    tokens = list(_WORD.finditer(hypothesis))
    gendered = [i for i, m in enumerate(tokens) if m.group().lower() in PRONOUN_GENDER]
    if not gendered:
        return None
    gender = PRONOUN_GENDER[tokens[rng.choice(gendered)].group().lower()]
    out, last = [], 0
    before, after = [], []
    for i in gendered:
        match = tokens[i]
        if PRONOUN_GENDER[match.group().lower()] != gender:
            continue
        following = tokens[i + 1].group() if i + 1 < len(tokens) and tokens[i + 1].start() - match.end() <= 1 else None
        new = _swapped_pronoun(match.group(), following)
        out += [hypothesis[last : match.start()], new]
        last = match.end()
        before.append(match.group())
        after.append(new)
    out.append(hypothesis[last:])
    return Perturbation("pronoun_swap", "".join(out), " ".join(before), " ".join(after))


def _negation(premise: str, hypothesis: str, rng: random.Random) -> Perturbation | None:
    del premise
    tokens = list(_WORD.finditer(hypothesis))
    negated = [
        i for i, m in enumerate(tokens)
        if m.group().lower() in CONTRACTIONS
        or (m.group().lower() in ("not", "never") and i > 0 and tokens[i - 1].group().lower() in AUXILIARIES)
    ]  # fmt: skip
    if negated:  # remove a negation the summary makes
        match = tokens[rng.choice(negated)]
        word = match.group()
        if word.lower() in CONTRACTIONS:
            new = CONTRACTIONS[word.lower()]
            new = new.capitalize() if word[0].isupper() else new
            return Perturbation("negation", _replace(hypothesis, match.start(), match.end(), new), word, new)
        start = match.start() - 1 if hypothesis[match.start() - 1] == " " else match.start()
        return Perturbation("negation", _replace(hypothesis, start, match.end(), ""), word, "")
    places = [
        i for i, m in enumerate(tokens[:-1])
        if m.group().lower() in AUXILIARIES
        and hypothesis[m.end() : tokens[i + 1].start()] == " "
        and tokens[i + 1].group().lower() not in _DETERMINERS | {"not", "never"}
        and not (m.group().lower() in ("have", "has", "had") and tokens[i + 1].group().lower() in ("to",))
    ]  # fmt: skip
    if not places:
        return None
    match = tokens[rng.choice(places)]
    word = match.group()
    new = "cannot" if word.lower() == "can" else f"{word} not"
    new = new.capitalize() if word[0].isupper() and word.lower() == "can" else new
    return Perturbation("negation", _replace(hypothesis, match.start(), match.end(), new), word, new)


_MAKERS = {
    "entity_swap": _entity_swap,
    "number_swap": _number_swap,
    "date_swap": _date_swap,
    "pronoun_swap": _pronoun_swap,
    "negation": _negation,
}


def _rng(seed: int, row_id: str, kind: str) -> random.Random:
    digest = hashlib.blake2b(f"{seed}\x1f{row_id}\x1f{kind}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def perturb_summary(premise: str, hypothesis: str, kind: str, *, seed: int = 0, key: str = "") -> Perturbation | None:
    """One twin of ``hypothesis`` of ``kind``, or None when the summary offers no such fact.

    ``key`` (the row's id) and ``seed`` choose among the candidates; the same arguments always
    give the same twin.
    """
    if kind not in _MAKERS:
        raise ConfigError(f"unknown perturbation kind {kind!r} (known: {', '.join(KINDS)})")
    twin = _MAKERS[kind](premise, hypothesis, _rng(seed, key, kind))
    return None if twin is None or twin.hypothesis == hypothesis else twin


def _check_kinds(kinds: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(kinds))
    unknown = [k for k in chosen if k not in _MAKERS]
    if unknown:
        raise ConfigError(f"unknown perturbation kind {unknown[0]!r} (known: {', '.join(KINDS)})")
    if not chosen:
        raise ConfigError(f"no perturbation kind chosen (known: {', '.join(KINDS)})")
    return chosen


_SPLIT = re.compile(r"(?<=[.!?])[\"'”’]?\s+|\n+")
_CLAIM_WORDS = (8, 40)
"""How long (in words) a document sentence must be to serve as a claim."""


def claim_sentences(premise: str, count: int, *, seed: int = 0, key: str = "") -> list[str]:
    """Up to ``count`` sentences of the document to serve as consistent claims (FactCC's way).

    Only sentences of 8-40 words that state something a twin can change are eligible (a
    name, a number, a date, a gendered pronoun or an auxiliary verb); the choice is seeded
    by ``seed`` and ``key`` (the document's id), and the chosen keep their document order.
    """
    eligible = [
        sentence.strip() for sentence in _SPLIT.split(premise)
        if _CLAIM_WORDS[0] <= len(sentence.split()) <= _CLAIM_WORDS[1]
        and any(maker(premise, sentence.strip(), random.Random(0)) for maker in _MAKERS.values())
    ]  # fmt: skip
    if len(eligible) <= count:
        return eligible
    chosen = sorted(_rng(seed, key, "sentences").sample(range(len(eligible)), count))
    return [eligible[i] for i in chosen]


@dataclass(frozen=True, slots=True)
class _Original:
    """A consistent claim to make twins of: a summary of the input, or a document sentence."""

    id: str
    doc_id: str
    premise: str
    hypothesis: str
    source: str
    split: str
    claim: str


def _originals(table: pa.Table, sentences: int, seed: int) -> list[_Original]:
    missing = [c for c in ("id", "doc_id", "premise", "hypothesis", "target", "source", "split") if c not in table.column_names]
    if missing:
        raise InputError(f"perturb: the input lacks column {missing[0]!r} (build it with `batchjudge data`)")
    rows = table.select(["id", "doc_id", "premise", "hypothesis", "target", "source", "split"]).to_pylist()
    originals = [
        _Original(r["id"], r["doc_id"], r["premise"], r["hypothesis"], r["source"], r["split"], "summary")
        for r in rows if r["target"] == CONSISTENT
    ]  # fmt: skip
    if sentences > 0:
        seen: set[str] = set()
        for r in rows:
            if r["doc_id"] in seen:
                continue
            seen.add(r["doc_id"])
            for text in claim_sentences(r["premise"], sentences, seed=seed, key=r["doc_id"]):
                row_id = stable_id(r["doc_id"], "sentence", text)
                originals.append(_Original(row_id, r["doc_id"], r["premise"], text, r["source"], r["split"], "sentence"))
    return originals


def perturb_table(
    table: pa.Table, *, kinds: Sequence[str] = KINDS, seed: int = 0, sentences: int = 0
) -> pa.Table:
    """The consistent claims of ``table`` (dataset schema) and their twins, pairs together.

    Claims are the consistent rows' summaries and, with ``sentences`` > 0, up to that many
    sentences of each document (:func:`claim_sentences`). Each claim comes first with
    ``kind`` ``"consistent"``, followed by its twins in :data:`KINDS` order; every row of a
    pair shares ``pair_id`` (the claim's ``id``), and ``claim`` says where the claim came
    from (``summary`` or ``sentence``). Inconsistent input rows are left out (their errors
    are not known, so they make no pair), and so are claims that offer no fact to change.
    """
    if sentences < 0:
        raise ConfigError(f"--sentences must be >= 0, got {sentences}")
    chosen = _check_kinds(kinds)
    rows: list[tuple[_Original, str, str, int, str, str]] = []
    for original in _originals(table, sentences, seed):
        twins = [
            twin for kind in chosen
            if (twin := perturb_summary(original.premise, original.hypothesis, kind, seed=seed, key=original.id))
        ]  # fmt: skip
        if twins:
            rows.append((original, original.id, original.hypothesis, CONSISTENT, "consistent", ""))
            rows += [
                (original, stable_id(original.id, t.kind), t.hypothesis, INCONSISTENT, t.kind, f"{t.before} -> {t.after}")
                for t in twins
            ]  # fmt: skip
    return dataset_table(
        ids=[r[1] for r in rows],
        doc_ids=[r[0].doc_id for r in rows],
        premises=[r[0].premise for r in rows],
        hypotheses=[r[2] for r in rows],
        targets=[r[3] for r in rows],
        source=[r[0].source for r in rows],
        split=[r[0].split for r in rows],
        extra={
            "kind": pa.array([r[4] for r in rows], pa.string()),
            "pair_id": pa.array([r[0].id for r in rows], pa.string()),
            "perturbation": pa.array([r[5] for r in rows], pa.string()),
            "claim": pa.array([r[0].claim for r in rows], pa.string()),
        },
    )
