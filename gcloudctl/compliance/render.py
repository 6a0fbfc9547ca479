"""Stage: compliance (rendering). A `Dossier` value -> HTML for an inspector, or JSON.

Called by `gcloudctl.cli.compliance` and the tests. Pure apart from reading the shipped
template: the HTML comes from `templates/dossier.html.j2` through jinja2 with autoescaping on
(every value from the cloud or the request is text, never markup), in the language asked for
(`gcloudctl.i18n`, domain `compliance`: Vietnamese with the English term in brackets where an
inspector will meet it in standards). It decides nothing: statuses come from the builder.
"""

from __future__ import annotations

import json
from functools import lru_cache

import jinja2

from gcloudctl import i18n
from gcloudctl.compliance.model import Dossier, Note, Status

DOMAIN = "compliance"

# The status words, in English (the message ids); the catalog gives the Vietnamese with the term.
STATUS_TEXT = {
    Status.PASS: "pass",
    Status.FAIL: "fail",
    Status.ERROR: "check error",
    Status.NOT_APPLICABLE: "not applicable here",
    Status.NOT_CHECKED: "not checked",
}


@lru_cache(maxsize=None)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("gcloudctl.compliance", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render_html(dossier: Dossier, *, lang: str | None = None) -> str:
    """The dossier as one self-contained HTML page (no scripts, no external resources)."""
    language = i18n.language(lang)

    def _(message: str, **params) -> str:
        return i18n.gettext(message, lang=language, domain=DOMAIN, **params)

    def status_text(status: Status | str) -> str:
        return _(STATUS_TEXT[Status(status)])

    def say(note: Note | None) -> str:
        if note is None:
            return ""
        # parameters that are words of ours (e.g. "controller database") are translated too
        return _(note.message, **{k: _(v) for k, v in note.params.items()})

    template = _environment().get_template("dossier.html.j2")
    return template.render(d=dossier, _=_, status_text=status_text, say=say, lang=language, Status=Status)


def render_json(dossier: Dossier) -> str:
    return json.dumps(dossier.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
