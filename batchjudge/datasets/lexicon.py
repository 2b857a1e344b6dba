"""The small closed word classes that name a summary's checkable facts.

A name, a number, a date, a gendered pronoun and a negation are what a summary most often
gets wrong (the FactCC paper's transformations swap exactly these). Finding them needs
only a few closed lists: the gender of each pronoun, month and weekday names, number
words, the auxiliaries a negation attaches to, and the negation cues themselves. The
perturbation generator (:mod:`batchjudge.datasets.perturb`) writes errors with these lists
and the local judge's features (:mod:`batchjudge.localjudge`) read them with the same ones,
so what one makes the other can see.
"""

from __future__ import annotations

__all__ = [
    "AUXILIARIES",
    "CONTRACTIONS",
    "DEMONYMS",
    "MONTHS",
    "NEGATION_CUES",
    "NUMBER_WORDS",
    "PRONOUN_GENDER",
    "PRONOUN_SWAP",
    "WEEKDAYS",
    "date_kind",
]

PRONOUN_GENDER: dict[str, str] = {
    "he": "m", "him": "m", "his": "m", "himself": "m",
    "she": "f", "her": "f", "hers": "f", "herself": "f",
}  # fmt: skip
"""Gendered third-person pronouns (lower case) and the gender each one names."""

PRONOUN_SWAP: dict[str, str] = {
    "he": "she", "him": "her", "his": "her", "himself": "herself",
    "she": "he", "hers": "his", "herself": "himself",
}  # fmt: skip
"""The other gender's form of each pronoun; ``her`` is ``his`` or ``him`` by its use, so it
is left to the caller."""

MONTHS = frozenset(
    "january february march april may june july august september october november december".split()
)
WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())

NUMBER_WORDS: dict[str, str] = {
    word: str(value)
    for value, word in enumerate(
        """zero one two three four five six seven eight nine ten eleven twelve thirteen
        fourteen fifteen sixteen seventeen eighteen nineteen twenty""".split()
    )
    if value >= 2  # "one" is more often a pronoun ("one of the") than a count
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
     "eighty": "80", "ninety": "90"}  # fmt: skip
"""Number words a summary writes instead of digits, as the digits they stand for."""

AUXILIARIES = frozenset(
    """is are was were has have had will would can could should may might must does do
    did""".split()
)
"""Verbs a ``not`` follows: where a negation is written (and where one can be inserted)."""

CONTRACTIONS: dict[str, str] = {
    "isn't": "is", "aren't": "are", "wasn't": "was", "weren't": "were", "hasn't": "has",
    "haven't": "have", "hadn't": "had", "won't": "will", "wouldn't": "would", "can't": "can",
    "couldn't": "could", "shouldn't": "should", "mustn't": "must", "doesn't": "does",
    "don't": "do", "didn't": "did", "cannot": "can",
}
"""Negated auxiliaries written as one word, and the auxiliary without the negation."""

NEGATION_CUES = frozenset("not no never without nor neither none nobody nothing".split()) | frozenset(
    CONTRACTIONS
)
"""Words that negate what follows them (a scope of a few words)."""


DEMONYMS: dict[str, str] = {
    demonym: country
    for country, demonyms in {
        "afghanistan": "afghan", "africa": "african", "america": "american",
        "argentina": "argentine argentinian", "australia": "australian", "austria": "austrian",
        "belgium": "belgian", "brazil": "brazilian", "britain": "british briton britons",
        "canada": "canadian", "china": "chinese", "colombia": "colombian", "cuba": "cuban",
        "denmark": "danish", "egypt": "egyptian", "england": "english", "europe": "european",
        "finland": "finnish", "france": "french", "germany": "german", "greece": "greek",
        "guatemala": "guatemalan", "hungary": "hungarian", "india": "indian",
        "indonesia": "indonesian", "iran": "iranian", "iraq": "iraqi", "ireland": "irish",
        "israel": "israeli", "italy": "italian", "japan": "japanese", "kenya": "kenyan",
        "korea": "korean", "libya": "libyan", "mexico": "mexican", "nepal": "nepalese",
        "netherlands": "dutch", "nigeria": "nigerian", "norway": "norwegian",
        "pakistan": "pakistani", "poland": "polish", "portugal": "portuguese",
        "russia": "russian", "scotland": "scottish scots scot", "spain": "spanish",
        "sweden": "swedish", "switzerland": "swiss", "syria": "syrian", "turkey": "turkish",
        "ukraine": "ukrainian", "wales": "welsh", "zimbabwe": "zimbabwean",
    }.items()
    for demonym in demonyms.split()
}  # fmt: skip
"""Nationality words and the country each names: "Japanese" is supported by "Japan"."""


def date_kind(word: str) -> str | None:
    """``"month"``, ``"weekday"`` or ``"year"`` (1900-2099) for a lower-cased token, else None."""
    if word in MONTHS:
        return "month"
    if word in WEEKDAYS:
        return "weekday"
    if len(word) == 4 and word.isdigit() and word[:2] in ("19", "20"):
        return "year"
    return None
