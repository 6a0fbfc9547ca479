"""Translations: gettext catalogs (Babel) for the CLI's messages and the web console's pages.

Stage: edge helper (used by `gcloudctl.cli`, `gcloudctl.api` and its pages; pure, no I/O
beyond reading the shipped `.po` files once). The catalogs are `gcloudctl/locale/<lang>/
LC_MESSAGES/<domain>.po`, kept as text in the repository and compiled in memory on first use
(no build step, nothing binary in git). Domains: `cli` (messages, hints, validation problems)
and `web` (the console's pages). English is the source language: a message without a
translation is shown in English, and `untranslated()` lets a test list them.

Language choice, first match: an explicit `lang` (`--lang`, a page's choice), then
`GCLOUDCTL_LANG`, `LC_ALL`, `LC_MESSAGES`, `LANG` (`vi_VN.UTF-8` -> `vi`); default English.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("en", "vi")
DOMAINS = ("cli", "web", "compliance")

# The language an edge chose for this invocation (`gcloudctl --lang`, the locale): `gettext`
# without an explicit `lang` speaks it. A ContextVar, so concurrent requests do not share it.
_CURRENT: ContextVar[str | None] = ContextVar("gcloudctl_lang", default=None)


def set_language(lang: str | None) -> None:
    """Make `lang` the language of `gettext` calls without an explicit one (None: the locale)."""
    _CURRENT.set(normalise(lang))


@contextmanager
def use_language(lang: str | None):
    """`set_language(lang)` for the duration of a block (one CLI invocation), then as before."""
    token = _CURRENT.set(normalise(lang))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def normalise(lang: str | None) -> str | None:
    """`vi_VN.UTF-8`, `vi-VN`, `VI` -> `vi`; unknown or empty -> None; `C`/`POSIX` -> `en`."""
    if not lang:
        return None
    code = lang.split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    if code in ("c", "posix"):
        return "en"
    return code if code in LANGUAGES else None


def language(explicit: str | None = None, environ: dict | None = None) -> str:
    """The language to speak: explicit choice, else the environment's locale, else English."""
    env = os.environ if environ is None else environ
    for candidate in (explicit, env.get("GCLOUDCTL_LANG"), env.get("LC_ALL"), env.get("LC_MESSAGES"), env.get("LANG")):
        found = normalise(candidate)
        if found:
            return found
    return "en"


def _po_resource(lang: str, domain: str):
    return resources.files("gcloudctl").joinpath("locale", lang, "LC_MESSAGES", f"{domain}.po")


@lru_cache(maxsize=None)
def catalog(lang: str, domain: str):
    """The Babel catalog of `domain` in `lang` (None when none is shipped)."""
    resource = _po_resource(lang, domain)
    if not resource.is_file():
        return None
    with resource.open("rb") as handle:
        return read_po(handle, locale=lang, domain=domain)


@lru_cache(maxsize=None)
def translations(lang: str, domain: str) -> NullTranslations:
    """gettext translations for `domain` in `lang` (English: the messages as written)."""
    cat = catalog(lang, domain) if lang != "en" else None
    if cat is None:
        return NullTranslations()
    buffer = io.BytesIO()
    write_mo(buffer, cat, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=domain)


def gettext(message: str, /, *, lang: str | None = None, domain: str = "cli", **params) -> str:
    """`message` in the chosen language, then `.format(**params)` when params are given."""
    text = translations(language(lang or _CURRENT.get()), domain).gettext(message)
    return text.format(**params) if params else text


def N_(message: str, /) -> str:
    """Mark `message` as a msgid (Babel extracts `N_`) where it is defined, for a `gettext` call
    that translates it later (tables of words): returns it unchanged."""
    return message


def untranslated(messages, lang: str = "vi", domain: str = "cli") -> list[str]:
    """The messages of `messages` that have no (non-fuzzy, non-empty) translation in `lang`."""
    cat = catalog(lang, domain)
    missing = []
    for message in messages:
        entry = cat.get(message) if cat is not None else None
        if entry is None or not entry.string or entry.fuzzy:
            missing.append(message)
    return missing
