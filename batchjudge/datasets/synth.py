"""Deterministic synthetic (document, summary, target) rows for scale tests and benchmarks.

Each synthetic document is a short news-like article built from a few *events* (job cuts,
a council decision, an appointment, arrests, ...) written out from templates with names,
organisations, places, numbers and dates, padded with varied background sentences to
150-600 words. Every document serves :data:`ROWS_PER_DOC` consecutive rows, exactly half of
them consistent: a consistent summary paraphrases or compresses one or two of the
document's events; an inconsistent one states an event with one realistic error
(:data:`ERROR_KINDS`): a changed number, a wrong date, a name, organisation or place the
document never mentions, an entity (name, organisation, place or role) swapped in from
elsewhere in the document, a negated claim, or an unsupported addition. Both classes share
one distribution of summary wordings, and one summary in five of either class adds true
world knowledge the document lacks ("the Welsh city of Cardiff"), as real summaries do, so a
judge cannot learn the label from the phrasing.

Randomness is counter-based (a SplitMix64 hash of ``(seed, doc or row index, slot)``,
computed with numpy for a whole batch at once), so row ``i`` depends only on
``(seed, i)``: any slice of the stream can be regenerated alone, in any batch size, on any
machine, and two shards never need to talk to each other.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchjudge.datasets.schema import DATASET_COLUMNS, DATASET_SCHEMA
from batchjudge.errors import ConfigError

__all__ = [
    "ERROR_KINDS",
    "ROWS_PER_DOC",
    "SYNTH_COLUMNS",
    "SYNTH_SCHEMA",
    "synth_batches",
    "write_synth",
]

SYNTH_COLUMNS = (*DATASET_COLUMNS, "kind")
"""Column order of every synthetic batch; ``kind`` is an error kind or ``"consistent"``."""

SYNTH_SCHEMA = DATASET_SCHEMA.append(pa.field("kind", pa.string(), nullable=False))
"""The project's dataset schema plus ``kind``."""

ROWS_PER_DOC = 8
"""Rows sharing one document (half consistent, half not), as FIB reuses each article."""

ERROR_KINDS = (
    "number_swap",
    "date_error",
    "unsupported_name",
    "entity_swap",
    "negation",
    "unsupported_addition",
)

_SOURCE = "synth"
_VALIDATION_PER_MILLE = 100
"""About 10% of documents (and all their rows) go to the ``val`` split."""

# --------------------------------------------------------------------------- vocabulary
_FIRST = (
    "Maria", "James", "Aisha", "Tomasz", "Eleanor", "Ravi", "Sofia", "Daniel", "Niamh",
    "Oluwaseun", "Hannah", "Mohammed", "Chloe", "Gareth", "Priya", "Lukas", "Fiona",
    "Kwame", "Isabel", "Owen", "Mei", "Patrick", "Leila", "Rhys", "Anna", "Samuel",
    "Bethan", "Ahmed", "Grace", "Callum", "Zainab", "Harriet", "Marek", "Ruth", "Dylan",
    "Catriona", "Ibrahim", "Lucy", "Stefan", "Imogen", "Tariq", "Morag", "Jonas", "Ellen",
    "Victor", "Nadia", "Angus", "Yusuf", "Clara", "Ewan",
)
_LAST = (
    "Keller", "Okafor", "Brennan", "Nowak", "Hughes", "Patel", "Lindqvist", "Morgan",
    "Gallagher", "Adeyemi", "Fraser", "Rahman", "Dubois", "Llewellyn", "Sharma", "Becker",
    "Campbell", "Mensah", "Ortega", "Pritchard", "Chen", "Doherty", "Haddad", "Evans",
    "Kowalski", "Osei", "Jenkins", "Farouk", "Whitfield", "MacLeod", "Hussain", "Ashworth",
    "Novak", "Greenwood", "Reilly", "Stewart", "Aziz", "Holloway", "Weber", "Thornton",
    "Iqbal", "Munro", "Sorensen", "Blake", "Vasquez", "Karim", "Duncan", "Yilmaz",
    "Fletcher", "Byrne",
)
_ORGS = (
    "Norland Bank", "Greyfield Foods", "Atlas Rail", "Brightwater Energy", "Castleton Motors",
    "Meridian Health", "Harbour Logistics", "Northgate Retail", "Kestrel Airways",
    "Redbrook Pharmaceuticals", "Summit Telecom", "Ashford Steel", "Bluewell Water",
    "Oakridge Homes", "Pennine Insurance", "Solent Shipping", "Valemont Chemicals",
    "Westmoor Utilities", "Cobalt Software", "Fairhaven Hospitals", "Larkspur Media",
    "Granite Construction", "Ironbridge Engineering", "Silverline Buses", "Tidewater Farms",
    "Holloway Brewing", "Marlow Textiles", "Quayside Developments", "Riverton University",
    "Stonegate Pubs", "Thistle Distillers", "Wrexford Council", "Elmstead Trust",
    "Highmoor Mining", "Lantern Books", "Crescent Airlines", "Orchard Supermarkets",
    "Pinecrest Labs", "Beacon Broadband", "Kingsway Hotels",
)
_PLACES = (
    "Leeds", "Bristol", "Cardiff", "Glasgow", "Belfast", "Norwich", "Swansea", "Aberdeen",
    "Plymouth", "Derby", "Inverness", "Exeter", "Sunderland", "Newport", "Dundee",
    "Lincoln", "Stoke", "Carlisle", "Bangor", "Wrexham", "Truro", "Hull", "Preston",
    "Galway", "Limerick", "Stirling", "Perth", "Ipswich", "Gloucester", "Worcester",
    "Hereford", "Durham", "Bath", "Chester", "Lancaster", "Salford", "Luton", "Oxford",
    "Reading", "Brighton",
)
_NATIONS = dict(
    zip(
        _PLACES,
        (
            "English", "English", "Welsh", "Scottish", "Northern Irish", "English", "Welsh",
            "Scottish", "English", "English", "Scottish", "English", "English", "Welsh",
            "Scottish", "English", "English", "English", "Welsh", "Welsh", "English",
            "English", "English", "Irish", "Irish", "Scottish", "Scottish", "English",
            "English", "English", "English", "English", "English", "English", "English",
            "English", "English", "English", "English", "English",
        ),
        strict=True,
    )
)
"""Where each place is: world knowledge a summary may add without being wrong."""
_ROLES = (
    "chief executive", "finance director", "chairman", "spokesperson", "operations manager",
    "managing director", "head of research", "council leader", "chief medical officer",
    "director of communications", "chief operating officer", "regional director",
    "project manager", "head of policy", "deputy chief executive",
)
_SITES = (
    "factory", "warehouse", "call centre", "depot", "plant", "distribution centre",
    "laboratory", "head office", "store", "processing site",
)
_PROJECTS = (
    "hospital wing", "bridge", "secondary school", "library", "sports stadium",
    "railway station", "bus depot", "flood barrier", "housing estate", "leisure centre",
    "cycle route", "community hall",
)
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)

# Slots of one sentence's random draws: the modulus of each (see _SENT_MOD).
_T, _FN, _LN, _ORG, _PLACE, _ROLE, _SITE, _PROJ, _DAY, _MONTH, _YEAR, _NUM, _SMALL = range(13)
_SENT_MOD = (
    720720,  # template: divisible by every pool length up to 16
    len(_FIRST), len(_LAST), len(_ORGS), len(_PLACES), len(_ROLES), len(_SITES),
    len(_PROJECTS), 28, len(_MONTHS), 12, 1_000_003, 58,
)
_SENT_SLOTS = len(_SENT_MOD)

# --------------------------------------------------------------------------- events
# Each event type: (number range, document templates, summary templates, negated summary).
_EVENTS: tuple[tuple[tuple[int, int], tuple[str, ...], tuple[str, ...], str], ...] = (
    (
        (12, 900),
        (
            "{org} said on {date} that it would cut {num} jobs at its {site} in {place}, a "
            "decision confirmed by {person}, the firm's {role}.",
            "On {date}, {person}, {role} of {org}, announced that {num} jobs would go at the "
            "company's {site} in {place}.",
            "{org} is to cut {num} jobs at its {site} in {place}. The decision was confirmed on "
            "{date} by {person}, the firm's {role}, who said it had not been taken lightly.",
        ),
        (
            "{org} announced on {date} that it will cut {num} jobs in {place}.",
            "{num} jobs are to go at the {site} run by {org} in {place}.",
            "{person} of {org} has confirmed {num} job cuts in {place}.",
            "{org} is to axe {num} posts in {place}, its {role} {person} said on {date}.",
            "Up to {num} workers in {place} are set to lose their jobs at {org}.",
        ),
        "{org} has said it will not cut any jobs at its {site} in {place}.",
    ),
    (
        (2, 480),
        (
            "Councillors in {place} approved a £{num}m plan for a new {project} on {date}, "
            "with construction to be carried out by {org}, {person}, the council's {role}, said.",
            "A £{num}m {project} for {place} was given the go-ahead on {date}, {person}, the "
            "council's {role}, said, adding that {org} would build it.",
            "Councillors in {place} have approved a new {project}. The £{num}m scheme, backed on "
            "{date}, will be built by {org}, according to {person}, the council's {role}.",
        ),
        (
            "A £{num}m {project} in {place} was approved on {date}.",
            "Plans for a new £{num}m {project} in {place}, to be built by {org}, have been "
            "approved.",
            "Councillors in {place} have backed a £{num}m {project}.",
            "A new {project} costing £{num}m was given the green light in {place} on {date}.",
            "{org} will build a £{num}m {project} for {place} after councillors backed the "
            "scheme, {person} said.",
        ),
        "Plans for a new {project} in {place} have been rejected by councillors.",
    ),
    (
        (2, 35),
        (
            "{person} was named {role} of {org} on {date}, after {num} years with the "
            "{place}-based group.",
            "{org} confirmed on {date} that {person}, who joined the {place} company {num} "
            "years ago, would become its new {role}.",
            "{org} has a new {role}. {person}, who has spent {num} years with the {place}-based "
            "group, took up the post on {date}.",
        ),
        (
            "{person} became {role} of {org} on {date}.",
            "{org} has appointed {person} as its new {role} after {num} years at the firm.",
            "{person} is the new {role} of the {place}-based {org}.",
            "{person} took up the role of {role} at {org} on {date}.",
            "After {num} years at the firm, {person} has been promoted to {role} at {org}.",
        ),
        "{org} has denied that {person} will become its new {role}.",
    ),
    (
        (3, 140),
        (
            "Police in {place} arrested {num} people on {date} after a protest outside the "
            "offices of {org}.",
            "{num} people were detained in {place} on {date} following clashes near the "
            "offices of {org}, officers said.",
            "A protest outside the offices of {org} in {place} ended in {num} arrests. Officers "
            "said on {date} that those held were being questioned.",
        ),
        (
            "{num} people were arrested in {place} on {date} after a protest at {org}.",
            "Police detained {num} people after a protest outside {org} in {place}.",
            "A protest outside the offices of {org} in {place} led to {num} arrests.",
            "Officers held {num} protesters on {date} after a demonstration at {org} in {place}.",
            "{num} demonstrators were held by police in {place}.",
        ),
        "No arrests were made after a protest outside {org} in {place}.",
    ),
    (
        (40, 9000),
        (
            "Researchers at {org} in {place} published a study of {num} volunteers on {date}, "
            "led by {person}, the team's {role}.",
            "{person}, {role} at {org}, said on {date} that the study of {num} volunteers in "
            "{place} had produced encouraging results.",
            "A study of {num} volunteers has been carried out in {place}. It was led by "
            "{person}, {role} at {org}, and published on {date}.",
        ),
        (
            "A study of {num} volunteers by {org} was published on {date}.",
            "Researchers at {org} in {place} have studied {num} volunteers.",
            "{person} led a study of {num} volunteers at {org}.",
            "Scientists at {org} said on {date} that they had tested {num} volunteers in {place}.",
            "A team led by {person} has published research involving {num} volunteers.",
        ),
        "{org} has abandoned its study of volunteers in {place}.",
    ),
    (
        (15, 1200),
        (
            "{org} opened a new {site} in {place} on {date}, creating {num} jobs, according "
            "to {person}, its {role}.",
            "The new {site} that {org} opened in {place} on {date} is expected to employ "
            "{num} people, {person} said.",
            "{org} has opened a {site} in {place}. The site, opened on {date}, will employ "
            "{num} people, {person}, its {role}, said.",
        ),
        (
            "{org} opened a {site} in {place} on {date}, creating {num} jobs.",
            "A new {site} run by {org} in {place} will create {num} jobs.",
            "{org} has opened a {site} in {place} with {num} new jobs.",
            "{org} created {num} new jobs in {place} when it opened a {site} there on {date}.",
            "{org} has expanded into {place}, with a new {site} employing {num} staff.",
        ),
        "{org} has decided not to open a {site} in {place}.",
    ),
    (
        (2, 24),
        (
            "{org} will raise its prices by {num}% from {date}, {person}, the company's "
            "{role}, told reporters in {place}.",
            "Customers of {org} in {place} will pay {num}% more from {date}, the firm's "
            "{role}, {person}, confirmed.",
            "Customers of {org} face higher bills. Prices will go up by {num}% from {date}, "
            "{person}, the company's {role}, said in {place}.",
        ),
        (
            "{org} is raising prices by {num}% from {date}.",
            "Prices at {org} will rise by {num}%, {person} said.",
            "{org} has announced a price rise of {num}% for customers in {place}.",
            "Bills for {org} customers will go up by {num}% from {date}.",
            "{org} customers will pay {num}% more, the firm's {role} has warned.",
        ),
        "{org} has said it will not raise prices for customers in {place}.",
    ),
    (
        (20, 950),
        (
            "A court in {place} fined {org} £{num},000 on {date} over safety failures at its "
            "{site}, the judge, {person}, said.",
            "On {date}, {org} was ordered by a court in {place} to pay £{num},000 after "
            "safety failures at its {site}.",
            "{org} has been fined £{num},000 over safety failures at its {site} in {place}. The "
            "penalty was imposed on {date} by the judge, {person}.",
        ),
        (
            "{org} was fined £{num},000 on {date} over safety failures in {place}.",
            "A court in {place} has fined {org} £{num},000.",
            "{org} must pay £{num},000 after safety failures at its {site} in {place}.",
            "{org} was ordered on {date} to pay £{num},000 for breaching safety rules.",
            "A judge in {place} penalised {org} £{num},000 over failures at its {site}.",
        ),
        "{org} has been cleared of safety failures at its {site} in {place}.",
    ),
)

_FILLERS = (
    '"This is a difficult day for everyone involved," said {person}, a spokesperson for '
    "{org}.",
    "The decision follows months of talks between {org} and local officials in {place}.",
    "{org} employs about {num} people across the region and has operated in {place} since "
    "{year}.",
    "{person}, who has lived in {place} for {small} years, said residents had been given "
    "little notice.",
    "Officials said further details would be published later in the year.",
    "A similar scheme was introduced in {place} in {year}, according to {org}.",
    "Opposition members in {place} criticised the timing of the announcement.",
    '{person}, {role} of {org}, described the move as "long overdue".',
    "Local businesses have reported a fall of about {small}% in trade over the past year.",
    "The area has a population of roughly {num},000 people.",
    "Campaigners have gathered more than {num} signatures calling for a public inquiry.",
    "A report published by {org} in {year} warned of rising costs in the sector.",
    "{person} told the BBC that the plans had been discussed for several months.",
    "Meetings with staff are expected to take place over the coming weeks.",
    "The union representing workers at the site said it was seeking urgent talks.",
    "Last year {org} reported profits of £{num}m, up {small}% on the previous year.",
    "Traffic in the centre of {place} was disrupted for several hours on {date}.",
    '{person} said the community had shown "remarkable resilience" in recent months.',
    "Critics argue that the plans do little to address the shortage of housing in {place}.",
    "The government said it was monitoring the situation closely.",
    "Figures from {org} show that demand has risen for {small} consecutive months.",
    "Residents will be able to comment on the proposals until {date}.",
    "A spokesperson for {org} declined to comment on the details.",
    "The {project} in {place} was completed in {year} at a cost of £{small}m.",
)

_ADDITIONS = (
    ", despite objections from {org}",
    ", after talks with {person} broke down",
    ", the first such decision since {year}",
    ", at a cost of about £{num}m",
    ", following pressure from unions in {place}",
    ", in a move welcomed by {person}, the {role} of {org}",
    ", weeks after a similar decision in {place}",
    ", affecting about {num} families",
)

_NAMES = ("person", "org", "place")
_SWAPPABLE = (*_NAMES, "role")
"""Fields an entity swap can exchange: names, and roles (a swap no name check can see)."""
_COMBOS = tuple(combinations(range(ROWS_PER_DOC), ROWS_PER_DOC // 2))
"""Which rows of a document are consistent: one of C(8, 4) = 70 balanced patterns."""

# Doc header slots, then events, then fillers; rows have their own slots.
_MAX_EVENTS = 4
_MAX_FILLERS = 32
_H_NSENT, _H_NEVENTS, _H_SPLIT, _H_COMBO = range(4)
_HEADER_MOD = (_MAX_FILLERS - 6, _MAX_EVENTS - 1, 1000, len(_COMBOS))
_R_EVENT, _R_TEMPLATE, _R_KIND, _R_TWO, _R_ADD, _R_ALT, _R_WORLD = range(7)
_ROW_MOD = (720720, 720720, 720720, 100, len(_ADDITIONS), 1_000_003, 100)
# Each row also draws one sentence's worth of values (_SENT_MOD) for replacements.
_WORLD_PERCENT = 20
"""Summaries (of either class) that place the event with knowledge the document lacks."""

_MAX_REDRAWS = 16
"""Fresh draws tried when a row repeats a summary of its own document (rare: ~3% of rows)."""
_DOC_STREAM = np.uint64(0xD0C5)
_ROW_STREAM = np.uint64(0x5077)


_ENTITY_FIELDS = {
    template: tuple(name for name in _SWAPPABLE if "{" + name + "}" in template)
    for template in (*_FILLERS, *(t for event in _EVENTS for t in event[1]))
}
"""Which swappable fields (person, org, place, role) each document template mentions."""
_NUMBER_FIELDS = {
    template: tuple(n for n in ("num", "small", "year", "date") if "{" + n + "}" in template)
    for template in _ENTITY_FIELDS
}
"""Which numeric fields each document template states (templates hold no other digits)."""


# --------------------------------------------------------------------------- randomness
def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser applied elementwise (uint64 arithmetic wraps, as intended)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _draws(
    seed: int, stream: np.uint64, first: int, moduli: np.ndarray, count: int
) -> list[list[int]]:
    """Random draws for items ``first .. first+count-1``, one list of ``len(moduli)`` ints each.

    Item ``k``'s draws depend only on ``(seed, stream, k)``, never on the batch it is in.
    """
    key = _splitmix64(np.array([seed], dtype=np.uint64) ^ stream)
    items = np.arange(first, first + count, dtype=np.uint64)[:, None]
    slots = np.arange(len(moduli), dtype=np.uint64)[None, :]
    counters = _splitmix64(items ^ key) + slots * np.uint64(0x632BE59BD9B4E019)
    draws: list[list[int]] = (_splitmix64(counters) % moduli).tolist()
    return draws


_MASK64 = (1 << 64) - 1


def _splitmix64_int(z: int) -> int:
    """:func:`_splitmix64` for one Python int (same arithmetic, modulo 2**64)."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _draws_one(seed: int, stream: np.uint64, item: int, moduli: Sequence[int]) -> list[int]:
    """``_draws(seed, stream, item, ..., 1)[0]`` in plain Python: cheaper for one item."""
    key = _splitmix64_int(seed ^ int(stream))
    base = _splitmix64_int(item ^ key)
    step = 0x632BE59BD9B4E019
    return [_splitmix64_int((base + k * step) & _MASK64) % m for k, m in enumerate(moduli)]


_DOC_MOD = np.array(_HEADER_MOD + _SENT_MOD * (_MAX_EVENTS + _MAX_FILLERS), dtype=np.uint64)
_ROW_MODULI = _ROW_MOD + _SENT_MOD
_ROWS_MOD = np.array(_ROW_MODULI, dtype=np.uint64)


# --------------------------------------------------------------------------- documents
_FIELD_VALUES: dict[str, Callable[[Sequence[int], int], str]] = {
    "person": lambda d, off: _FIRST[d[off + _FN]] + " " + _LAST[d[off + _LN]],
    "org": lambda d, off: _ORGS[d[off + _ORG]],
    "place": lambda d, off: _PLACES[d[off + _PLACE]],
    "role": lambda d, off: _ROLES[d[off + _ROLE]],
    "site": lambda d, off: _SITES[d[off + _SITE]],
    "project": lambda d, off: _PROJECTS[d[off + _PROJ]],
    "date": lambda d, off: f"{d[off + _DAY] + 1} {_MONTHS[d[off + _MONTH]]}",
    "year": lambda d, off: str(2012 + d[off + _YEAR]),
    "num": lambda d, off: str(10 + d[off + _NUM] % 990),
    "small": lambda d, off: str(2 + d[off + _SMALL]),
}
"""How one sentence's draws (starting at ``off``) become each named value."""


class _Fields(dict[str, str]):
    """The named values of one sentence's draws, each computed when a template asks for it."""

    __slots__ = ("_draws", "_off")

    def __init__(self, draws: Sequence[int], off: int) -> None:
        super().__init__()
        self._draws = draws
        self._off = off

    def __missing__(self, key: str) -> str:
        value = self[key] = _FIELD_VALUES[key](self._draws, self._off)
        return value


def _fields(d: Sequence[int], off: int) -> dict[str, str]:
    """Every named value of one sentence's draws (for events, whose facts are reused)."""
    return {name: value(d, off) for name, value in _FIELD_VALUES.items()}


class _Doc:
    """One synthetic document: its text, its events and the entities it mentions."""

    __slots__ = ("combo", "entities", "events", "numbers", "split", "text")

    def __init__(self, d: Sequence[int]) -> None:
        n_events = 2 + d[_H_NEVENTS]
        n_fillers = 7 + d[_H_NSENT]
        base = len(_HEADER_MOD)
        entities: dict[str, set[str]] = {name: set() for name in _SWAPPABLE}
        events: list[tuple[int, dict[str, str]]] = []
        numbers: set[str] = set()
        event_text: list[str] = []
        filler_text: list[str] = []
        for k in range(n_events + n_fillers):
            is_event = k < n_events
            off = base + (k if is_event else _MAX_EVENTS + k - n_events) * _SENT_SLOTS
            f = _fields(d, off) if is_event else _Fields(d, off)
            if is_event:
                kind = d[off + _T] % len(_EVENTS)
                (lo, hi), doc_templates, _, _ = _EVENTS[kind]
                f["num"] = str(lo + d[off + _NUM] % (hi - lo))
                template = doc_templates[(d[off + _T] // len(_EVENTS)) % len(doc_templates)]
                events.append((kind, f))
                event_text.append(template.format_map(f))
            else:
                template = _FILLERS[d[off + _T] % len(_FILLERS)]
                filler_text.append(template.format_map(f))
            for name in _ENTITY_FIELDS[template]:
                entities[name].add(f[name])
            for name in _NUMBER_FIELDS[template]:
                numbers.add(f[name].partition(" ")[0])  # "4 November" -> "4"
        # News style: the lead event first, the other events spread through the background.
        after = {e * n_fillers // n_events - 1: e for e in range(1, n_events)}
        parts = [event_text[0]]
        for k, sentence in enumerate(filler_text):
            parts.append(sentence)
            if k in after:
                parts.append(event_text[after[k]])
        # Paragraphs of three sentences, as in the articles summarisers are trained on.
        self.text = "\n".join(" ".join(parts[i : i + 3]) for i in range(0, len(parts), 3))
        self.events = events
        self.entities = entities
        self.split = "val" if d[_H_SPLIT] < _VALIDATION_PER_MILLE else "train"
        self.combo = _COMBOS[d[_H_COMBO]]
        self.numbers = numbers
        """Every number the text states (from the values its templates used)."""


# --------------------------------------------------------------------------- summaries
def _fresh_number(doc: _Doc, avoid: str, lo: int, hi: int, start: int) -> str:
    """A number in ``[lo, hi)`` that the document never mentions (nor ``avoid``)."""
    span = hi - lo
    for t in range(span):
        candidate = str(lo + (start + t) % span)
        if candidate != avoid and candidate not in doc.numbers:
            return candidate
    return str(lo + (int(avoid) - lo + 1) % span)


def _fresh_value(doc: _Doc, field: str, value: str, r: Sequence[int], off: int) -> str:
    """A person, organisation or place that the document never mentions."""
    if field == "person":
        first = _FIRST[r[off + _FN]]
        for t in range(len(_LAST)):
            last = _LAST[(r[off + _LN] + t) % len(_LAST)]
            if last not in doc.text:
                return first + " " + last
        return first + " " + last
    pool = _ORGS if field == "org" else _PLACES
    start = r[off + (_ORG if field == "org" else _PLACE)]
    for t in range(len(pool)):
        candidate = pool[(start + t) % len(pool)]
        if candidate not in doc.text:
            return candidate
    return value


def _fresh_date(doc: _Doc, date: str, start: int) -> str:
    """A date that the document never mentions."""
    day, month = date.split(" ", 1)
    for t in range(1, 28 * 12):
        k = start + t
        candidate = f"{(int(day) + k) % 28 + 1} {_MONTHS[(k // 28 + _MONTHS.index(month)) % 12]}"
        if candidate not in doc.text:
            return candidate
    return date


def _errors_for(template: str, doc: _Doc, facts: dict[str, str]) -> list[tuple[str, str]]:
    """The (error kind, field) pairs that can be stated with ``template``, in a fixed order.

    The template is drawn first, the same way for both classes, and the error then fitted
    to it: so consistent and inconsistent summaries share one template distribution and a
    judge cannot tell them apart by their wording alone.
    """
    errors = [("negation", ""), ("unsupported_addition", "")]
    if "{num}" in template:
        errors.append(("number_swap", "num"))
    if "{date}" in template:
        errors.append(("date_error", "date"))
    for field in _SWAPPABLE:
        if "{" + field + "}" in template:
            if field in _NAMES:
                errors.append(("unsupported_name", field))
            if doc.entities[field] - {facts[field]}:
                errors.append(("entity_swap", field))
    return errors


def _summary(doc: _Doc, r: Sequence[int], target: int) -> tuple[str, str]:
    """One row's summary of ``doc`` and its kind, from the row's draws ``r``."""
    n = len(doc.events)
    e = r[_R_EVENT] % n
    kind_e, facts = doc.events[e]
    (lo, hi), _, summaries, negated = _EVENTS[kind_e]
    off = len(_ROW_MOD)
    template = summaries[r[_R_TEMPLATE] % len(summaries)]
    if r[_R_WORLD] < _WORLD_PERCENT and "in {place}" in template:
        # As real summaries do: true, but not in the document ("the Welsh city of Cardiff").
        template = template.replace("in {place}", "in the {nation} city of {place}", 1)
    kind, field = "consistent", ""
    if not target:  # an error kind that fits the template, then a field for it
        errors = _errors_for(template, doc, facts)
        kinds = list(dict.fromkeys(k for k, _ in errors))
        kind = kinds[r[_R_KIND] % 60 % len(kinds)]  # 60: uniform over 1..6 kinds
        fields = [name for k, name in errors if k == kind]
        field = fields[r[_R_KIND] // 60 % len(fields)]
    f = dict(facts)
    if kind == "number_swap":
        f["num"] = _fresh_number(doc, facts["num"], lo, hi, r[_R_ALT])
    elif kind == "date_error":
        f["date"] = _fresh_date(doc, facts["date"], r[_R_ALT])
    elif kind == "entity_swap":
        others = sorted(doc.entities[field] - {facts[field]})
        f[field] = others[r[_R_ALT] % len(others)]
    elif kind == "unsupported_name":
        f[field] = _fresh_value(doc, field, facts[field], r, off)
    f["nation"] = _NATIONS[f["place"]]  # of the place the summary names, right or wrong
    text = (negated if kind == "negation" else template).format_map(f)
    if kind == "unsupported_addition":
        extra = _Fields(r, off)
        extra["org"] = _fresh_value(doc, "org", "", r, off)
        extra["person"] = _fresh_value(doc, "person", "", r, off)
        extra["place"] = _fresh_value(doc, "place", "", r, off)
        extra["num"] = _fresh_number(doc, "", 10, 1000, r[off + _NUM])
        extra["year"] = _fresh_number(doc, "", 2000, 2012, r[off + _YEAR])
        text = text[:-1] + _ADDITIONS[r[_R_ADD]].format_map(extra) + "."
    if r[_R_TWO] < 30 and n > 1:  # a second, consistent sentence from another event
        kind_2, facts_2 = doc.events[(e + 1 + r[_R_ALT] % (n - 1)) % n]
        summaries_2 = _EVENTS[kind_2][2]
        second = summaries_2[(r[_R_TEMPLATE] // 7) % len(summaries_2)].format_map(facts_2)
        text = text + " " + second if r[_R_TWO] % 2 else second + " " + text
    return text, kind


# --------------------------------------------------------------------------- public API
def synth_batches(
    rows: int, *, seed: int = 0, batch_size: int = 8192, start: int = 0
) -> Iterator[pa.RecordBatch]:
    """Yield rows ``start .. start+rows-1`` of the synthetic stream for ``seed`` as batches.

    Row ``i`` depends only on ``(seed, i)``: ``synth_batches(10, start=5)`` yields exactly
    rows 5..14 of ``synth_batches(20)``, whatever the batch sizes. Rows of one document are
    consecutive (:data:`ROWS_PER_DOC` per document, half of them consistent).
    """
    if rows < 0 or start < 0:
        raise ConfigError(f"synthetic rows and start must be >= 0, got rows={rows} start={start}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be in [0, 2**63), got {seed}")
    end = start + rows
    for lo in range(start, end, batch_size):
        hi = min(lo + batch_size, end)
        yield _batch(seed, lo, hi)


def _batch(seed: int, lo: int, hi: int) -> pa.RecordBatch:
    """Rows ``lo .. hi-1`` as one record batch.

    Whole documents are generated (all their rows), so that a document's summaries can be
    kept distinct whatever slice is asked for; the rows outside ``lo .. hi-1`` are dropped.
    """
    first_doc, last_doc = lo // ROWS_PER_DOC, (hi - 1) // ROWS_PER_DOC
    n_docs = last_doc - first_doc + 1
    docs = [_Doc(d) for d in _draws(seed, _DOC_STREAM, first_doc, _DOC_MOD, n_docs)]
    first_row = first_doc * ROWS_PER_DOC
    row_draws = _draws(seed, _ROW_STREAM, first_row, _ROWS_MOD, n_docs * ROWS_PER_DOC)
    hypotheses: list[str] = []
    kinds: list[str] = []
    targets: list[int] = []
    doc_index: list[int] = []
    for k, doc in enumerate(docs):
        seen: set[str] = set()
        for j in range(ROWS_PER_DOC):
            i = first_row + k * ROWS_PER_DOC + j
            target = int(j in doc.combo)
            text, kind = _summary(doc, row_draws[i - first_row], target)
            for attempt in range(1, _MAX_REDRAWS + 1):  # a document never repeats a summary
                if text not in seen:
                    break
                redraw = _draws_one(seed, _ROW_STREAM, i + (attempt << 40), _ROW_MODULI)
                text, kind = _summary(doc, redraw, target)
            seen.add(text)
            if lo <= i < hi:
                hypotheses.append(text)
                kinds.append(kind)
                targets.append(target)
                doc_index.append(k)
    take = pa.array(doc_index, type=pa.int32())
    doc_ids = pa.array([f"synth-{seed}-d{first_doc + k:09d}" for k in range(n_docs)])
    splits = pa.array([doc.split for doc in docs])
    columns = [
        pa.array([f"synth-{seed}-{i:010d}" for i in range(lo, hi)]),
        doc_ids.take(take),
        pa.array([doc.text for doc in docs]).take(take),
        pa.array(hypotheses),
        pa.array(targets, type=pa.int8()),
        pa.array([_SOURCE] * (hi - lo)),
        splits.take(take),
        pa.array(kinds),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SYNTH_SCHEMA)


def write_synth(
    out_dir: str | Path,
    *,
    rows: int,
    shards: int = 1,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write ``rows`` synthetic rows as ``out_dir/part-00000.parquet`` ... (``shards`` files).

    Shard ``k`` holds a contiguous slice of the stream, so the shards together are exactly
    ``synth_batches(rows, seed=seed)``. Each file is written to a temporary name, fsynced and
    renamed, so a reader never sees half a shard. Existing ``part-*.parquet`` files that this
    call would not rewrite are refused, so a directory never mixes two datasets. Large jobs
    with several shards are written by one process per CPU core (shards are independent).

    ``progress`` is called, on the calling thread, with the number of rows written so far:
    after each batch when writing here, a few times a second while worker processes write.
    """
    if rows < 1:
        raise ConfigError(f"synthetic rows must be >= 1, got {rows}")
    if not 1 <= shards <= rows:
        raise ConfigError(f"shards must be between 1 and rows ({rows}), got {shards}")
    if not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be in [0, 2**63), got {seed}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create the output directory ({exc.strerror})") from exc
    paths = [out / f"part-{k:05d}.parquet" for k in range(shards)]
    stale = sorted(set(out.glob("part-*.parquet")) - set(paths))
    if stale:
        raise ConfigError(f"{out}: already holds other shards ({stale[0].name}); use an empty dir")
    jobs = [(p, seed, k * rows // shards, (k + 1) * rows // shards) for k, p in enumerate(paths)]
    workers = min(shards, os.cpu_count() or 1) if rows >= _PARALLEL_MIN_ROWS else 1
    try:
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            _write_in_workers(jobs, workers, progress)
        else:
            written = 0

            def count(n: int) -> None:
                nonlocal written
                written += n
                if progress is not None:
                    progress(written)

            for job in jobs:
                _write_shard(*job, on_rows=count)
    except OSError as exc:  # a full disk, a read-only directory
        where = exc.filename or out
        raise ConfigError(f"{where}: cannot write the synthetic shard ({exc.strerror})") from exc
    return paths


_PARALLEL_MIN_ROWS = 200_000
"""Below this, starting worker processes costs more than it saves."""

_PROGRESS_EVERY_S = 0.2
"""How often the parent reads the workers' shared row count while they write."""

_worker_rows: Any = None
"""In a pool worker: the count of rows written, shared by all workers (a ``Value``)."""


def _write_in_workers(
    jobs: list[tuple[Path, int, int, int]],
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Write ``jobs`` in ``workers`` processes, reporting their shared row count meanwhile.

    fork, not spawn: spawn re-imports the caller's ``__main__``, which breaks scripts
    without a main guard; the children only run numpy and pyarrow (fork-safe).
    """
    context = multiprocessing.get_context("fork")
    written = context.Value("q", 0)
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_share_rows, initargs=(written,)
    ) as pool:
        pending = {pool.submit(_write_shard_in_worker, *job) for job in jobs}
        while pending:
            done, pending = wait(pending, _PROGRESS_EVERY_S, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # the first worker's error, raised here
            if progress is not None:
                progress(int(written.value))


def _share_rows(written: Any) -> None:
    global _worker_rows
    _worker_rows = written


def _add_worker_rows(n: int) -> None:
    with _worker_rows.get_lock():
        _worker_rows.value += n


def _write_shard_in_worker(path: Path, seed: int, lo: int, hi: int) -> None:
    _write_shard(path, seed, lo, hi, on_rows=_add_worker_rows)


def _write_shard(
    path: Path, seed: int, lo: int, hi: int, *, on_rows: Callable[[int], None]
) -> None:
    """Write rows ``lo .. hi-1`` to ``path`` atomically (temp file, fsync, rename), telling
    ``on_rows`` how many rows each written batch held."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with pq.ParquetWriter(
            tmp, SYNTH_SCHEMA, compression="zstd", dictionary_pagesize_limit=1 << 24
        ) as writer:
            for batch in synth_batches(hi - lo, seed=seed, start=lo):
                writer.write_batch(batch)
                on_rows(batch.num_rows)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
