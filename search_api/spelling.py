"""Other written forms of a query word: British and American spellings, and the usual short forms.

Notices are written in British, American and Indian English ("licence" and "license" for the same
software renewal, "centre" and "center", "fertiliser" and "fertilizer"), and the index's English stemmer
keeps the two forms apart ("licenc" vs "licens"). So each query word is expanded to its other spelling by
the regular British/American correspondences and a few irregular pairs. A variant is kept only when the
index holds it (one document-frequency lookup each), so rules never invent words the collection lacks.
The expansion is query-side only: the index and its analyser are unchanged.

Notices also abbreviate the words buyers search for ("Lab Equipment", "Supply of Lab Eqpt",
"Maint of CT Scan"), and the stemmer cannot join "lab" to "laboratori". ``SHORT`` holds the short forms
that procurement notices use for common words, read in both directions like the irregular pairs.
"""

from __future__ import annotations

from collections.abc import Callable

# (British ending, American ending); applied in both directions to the end of a word
ENDINGS = (
    ("isation", "ization"), ("isations", "izations"), ("ise", "ize"), ("ised", "ized"), ("ises", "izes"),
    ("ising", "izing"), ("iser", "izer"), ("isers", "izers"),
    ("yse", "yze"), ("ysed", "yzed"), ("ysing", "yzing"),
    ("our", "or"), ("ours", "ors"), ("oured", "ored"), ("ouring", "oring"),
    ("tre", "ter"), ("tres", "ters"), ("bre", "ber"), ("bres", "bers"),
    ("ence", "ense"), ("ences", "enses"),
    ("ogue", "og"), ("ogues", "ogs"),
    ("lled", "led"), ("lling", "ling"), ("ller", "ler"), ("llers", "lers"),
    ("mme", "m"), ("mmes", "ms"),
)
# British beginnings whose American form drops a letter (only this way: "e" -> "ae" would be a guess)
BEGINNINGS = (("sulph", "sulf"), ("paed", "ped"), ("haem", "hem"), ("anaes", "anes"), ("oes", "es"),
              ("orthopaed", "orthoped"), ("gynaec", "gynec"), ("foet", "fet"))
PAIRS = {  # irregular pairs, singular forms
    "aluminium": "aluminum", "tyre": "tire", "kerb": "curb", "plough": "plow", "grey": "gray",
    "mould": "mold", "jewellery": "jewelry", "enrol": "enroll", "fulfil": "fulfill",
    "instalment": "installment", "judgement": "judgment", "ageing": "aging", "draught": "draft",
}
PAIRS.update({v: k for k, v in list(PAIRS.items())})
# short forms notices use for a whole word (both directions; a query may be typed either way)
_LONG_TO_SHORT = {"laboratory": ("lab",), "laboratories": ("labs",), "equipment": ("eqpt",),
                  "maintenance": ("maint",), "government": ("govt",), "department": ("dept",)}
SHORT = {**_LONG_TO_SHORT, **{short: (long,) for long, shorts in _LONG_TO_SHORT.items() for short in shorts}}
# the same word in both spellings: "meter" is the device in British English too
SAME = frozenset({"meter", "meters"})
MIN_ROOT = 3  # letters before a changed ending: 'flour' or 'fence' are not 'flor' or 'fense'


def candidates(word: str) -> list[str]:
    """Other spellings and short forms of one lower-case word by the rules (unchecked against any index)."""
    out: list[str] = list(SHORT.get(word, ()))
    if word in SAME or not word.isalpha():
        return out
    singular, plural = (word[:-1], "s") if word.endswith("s") and word[:-1] in PAIRS else (word, "")
    if singular in PAIRS:
        out.append(PAIRS[singular] + plural)
    for british, american in ENDINGS:
        for a, b in ((british, american), (american, british)):
            if word.endswith(a) and len(word) - len(a) >= MIN_ROOT:
                out.append(word[: len(word) - len(a)] + b)
    for british, american in BEGINNINGS:
        if word.startswith(british) and len(word) > len(british) + 2:
            out.append(american + word[len(british):])
    return [w for w in dict.fromkeys(out) if w != word]


def variants(words: list[str], analyse: Callable[[str], list[str]], known: Callable[[str], bool]
             ) -> dict[str, list[str]]:
    """For each query word (lower case), the analysed forms of its other spellings that the index holds and
    that its own analysed form does not already cover: {analysed word: [analysed variants]}."""
    out: dict[str, list[str]] = {}
    for word in words:
        own = analyse(word)
        if len(own) != 1:
            continue
        found = []
        for other in candidates(word):
            form = analyse(other)
            if len(form) == 1 and form[0] != own[0] and form[0] not in found and known(form[0]):
                found.append(form[0])
        if found:
            out.setdefault(own[0], []).extend(f for f in found if f not in out.get(own[0], []))
    return out
