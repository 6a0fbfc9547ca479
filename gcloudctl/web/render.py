"""Stage: web edge (rendering). Jinja2 templates of the console, one environment per language.

Autoescape is on for every template (all of them are HTML): every value a page shows — names,
descriptions, reasons, YAML, events — is escaped, so a `<script>` in a request shows as text.
The i18n extension is installed with the `web` catalog of `gcloudctl.i18n` (Babel, compiled in
memory); English is the source language, Vietnamese the default. Dates are shown in
Asia/Ho_Chi_Minh in the page's language (`localtime` filter).

Called by `gcloudctl.web.routes`. Pure apart from reading the packaged templates once.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from jinja2 import Environment, PackageLoader, StrictUndefined

from gcloudctl import i18n

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def N_(text: str) -> str:  # noqa: N802 - marks a message for extraction; translated when shown
    return text


# words the service returns as values (version states, tenant phases, decisions), as shown
LABELS = {
    "pending-approval": N_("pending approval"), "approved": N_("approved"), "rejected": N_("rejected"),
    "superseded": N_("superseded"), "provisioning": N_("provisioning"), "ready": N_("ready"),
    "failed": N_("failed"), "deleting": N_("deleting"), "deleted": N_("deleted"), "expired": N_("expired"),
    "approve": N_("approve"), "reject": N_("reject"),
}
DEFAULT_LANG = "vi"
DOMAIN = "web"


def language(choice: str | None) -> str:
    """The page's language: a valid choice, else Vietnamese."""
    return i18n.normalise(choice) or DEFAULT_LANG


def localtime(value: Any, lang: str = DEFAULT_LANG) -> str:
    """An ISO 8601 instant (or datetime) as a date and time in Asia/Ho_Chi_Minh."""
    if not value:
        return ""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return format_datetime(moment, "dd/MM/yyyy HH:mm:ss", tzinfo=TIMEZONE, locale=lang) + " (UTC+7)"


@lru_cache(maxsize=None)
def environment(lang: str) -> Environment:
    env = Environment(loader=PackageLoader("gcloudctl.web", "templates"), autoescape=True,
                      extensions=["jinja2.ext.i18n"], undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(i18n.translations(lang, DOMAIN), newstyle=True)
    env.filters["localtime"] = lambda value: localtime(value, lang)
    env.globals["lang"] = lang
    translations = i18n.translations(lang, DOMAIN)
    env.globals["label"] = lambda word: translations.gettext(LABELS[word]) if word in LABELS else word
    return env


def render(template: str, lang: str, **values: Any) -> str:
    return environment(language(lang)).get_template(template).render(**values)


def message(text: str, lang: str, **params: Any) -> str:
    """A message of the web code (not of a template) in the page's language."""
    return i18n.gettext(text, lang=language(lang), domain=DOMAIN, **params)
