"""Sentences worded by a run, in every language of the book.

A chapter words some of its sentences from its own numbers ("the DAE *beats* the median
filter", "lower by 2.7 nats") and glues them into the text. The book is published in English,
Chinese and Russian from one execution, so such a phrase cannot be a plain English string:
`say` returns a `Phrase`, which *is* the English string (use it wherever a `str` goes) and
also remembers its template and arguments. Displayed or glued, it carries both; the Chinese
and Russian editions render it again from their translation of the template (the catalogue
`book/locales/<lang>/LC_MESSAGES/phrases.po`, which `make translations` fills from every
`say("...")` in the notebooks and in `aelib`).

    >>> say("{method} is {gap} dB behind", method=say("the median filter"), gap="1.7")
    'the median filter is 1.7 dB behind'

Rules, so that every phrase can be found and translated: the template is a string literal
written in the call; its `{names}` are exactly the keyword arguments; numbers are formatted
before they are passed (`gap=f"{x:.1f}"`); a word that needs translating is itself a `say`.
Introduced in chapter 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

#: The MIME type under which a displayed or glued phrase carries its template and arguments.
MIME = "application/vnd.aelib.phrase+json"

#: Languages of the book, each with how a list ends ("a, b and c").
LANGUAGES = ("en", "zh_CN", "ru")
_LIST_WORDS = {
    "en": {"and": ("{a} and {b}", ", "), "or": ("{a} or {b}", ", ")},
    "zh_CN": {"and": ("{a}和{b}", "、"), "or": ("{a}或{b}", "、")},
    "ru": {"and": ("{a} и {b}", ", "), "or": ("{a} или {b}", ", ")},
}
#: A `{name}` of a template, filled from the argument of that name.
PLACEHOLDER = re.compile(r"\{(\w+)\}")


class Phrase(str):
    """The English text of a phrase, with what it takes to say it in another language."""

    data: dict

    def __new__(cls, data: dict):
        self = super().__new__(cls, render(data, "en"))
        self.data = data
        return self

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": repr(str(self)), MIME: self.data}

    def in_language(self, language: str, catalogue: Mapping[str, str]) -> str:
        return render(self.data, language, catalogue)


class MarkdownPhrase:
    """A phrase displayed as Markdown (a note at the top of a page): `display(MarkdownPhrase(p))`."""

    def __init__(self, phrase: Phrase):
        if not isinstance(phrase, Phrase):
            raise TypeError("MarkdownPhrase: pass a phrase made with i18n.say(...), "
                            f"not {type(phrase).__name__}")
        self.phrase = phrase

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/markdown": str(self.phrase), "text/plain": str(self.phrase),
                MIME: self.phrase.data}

    def __str__(self) -> str:
        return str(self.phrase)


def _arg(value: object) -> object:
    if isinstance(value, Phrase):
        return value.data
    if isinstance(value, float):
        raise TypeError(f"say: format the number {value!r} before passing it "
                        "(e.g. f\"{x:.2f}\"), so that every language shows the same digits")
    return str(value)


def say(template: str, **args: object) -> Phrase:
    """The phrase `template` with its `{names}` filled from `args` (see the module's rules).

    Raises `ValueError` when the names and the arguments differ and `TypeError` for an
    unformatted float.
    """
    if not isinstance(template, str):
        raise TypeError(f"say: the template must be a string literal, not {type(template).__name__}")
    names = set(PLACEHOLDER.findall(template))
    if names != set(args):
        missing, extra = sorted(names - set(args)), sorted(set(args) - names)
        raise ValueError(f"say({template!r}): placeholders and arguments differ"
                         + (f"; no argument for {missing}" if missing else "")
                         + (f"; no placeholder for {extra}" if extra else ""))
    return Phrase({"t": template, "a": {k: _arg(v) for k, v in args.items()}})


def listed(items: Iterable[object], conjunction: str = "and") -> Phrase:
    """Items joined as in a sentence: "2", "2 and 4", "2, 4 and 8" (Chinese "2、4和8").

    Raises `ValueError` on no items: a sentence listing nothing must be worded differently.
    """
    values = [_arg(i) for i in items]
    if not values:
        raise ValueError("listed: no items to list; word the sentence for the empty case.")
    if conjunction not in _LIST_WORDS["en"]:
        raise ValueError(f"listed: conjunction must be 'and' or 'or', not {conjunction!r}")
    return Phrase({"list": values, "conj": conjunction})


def render(data: object, language: str, catalogue: Mapping[str, str] | None = None) -> str:
    """`data` (a phrase's template and arguments) in `language`, from `catalogue` (English
    template -> translated template). An English template missing from the catalogue is a
    `KeyError` for any language but English: tests/test_translations.py keeps them complete."""
    if isinstance(data, str):
        return data
    if not isinstance(data, dict):
        raise TypeError(f"render: not a phrase: {data!r}")
    if language not in _LIST_WORDS:
        raise ValueError(f"render: language {language!r} is not one of {LANGUAGES}")
    if "list" in data:
        words = [render(i, language, catalogue) for i in data["list"]]
        pair, sep = _LIST_WORDS[language][data["conj"]]
        if len(words) == 1:
            return words[0]
        return pair.format(a=sep.join(words[:-1]), b=words[-1])
    template = data["t"]
    if language != "en":
        if catalogue is None or template not in catalogue:
            raise KeyError(f"no {language} translation of the phrase {template!r}; "
                           "run make translations and translate it in phrases.po")
        template = catalogue[template]
    args = {k: render(v, language, catalogue) for k, v in data["a"].items()}
    return PLACEHOLDER.sub(lambda m: args[m.group(1)], template)

