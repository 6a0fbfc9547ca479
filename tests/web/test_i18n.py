"""Every string of the console's pages (templates and the web code's messages) has a Vietnamese
translation in gcloudctl/locale/vi/LC_MESSAGES/web.po, and each translation keeps its
placeholders. Messages are extracted with Babel exactly as a translator would (jinja2's
extractor for the templates, Python's for the code)."""

from __future__ import annotations

import re
from importlib import resources

from babel.messages.extract import extract_from_dir

from gcloudctl import i18n
from gcloudctl.web.render import render

METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def page_messages() -> dict[str, str]:
    """msgid (a plural's singular) -> where it is used, for every message of gcloudctl/web."""
    root = str(resources.files("gcloudctl").joinpath("web"))
    found: dict[str, str] = {}
    for filename, line, message, _comments, _context in extract_from_dir(root, METHODS, options_map=OPTIONS):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, f"gcloudctl/web/{filename}:{line}")
    return found


def test_extraction_finds_the_pages_strings():
    found = page_messages()
    assert len(found) > 100
    assert {"Log in", "Approve", "Reject", "Policy verdicts", "Audit trail"} <= set(found)
    assert "The user name, password or domain is not right." in found  # from the code (N_)


def test_every_page_string_has_a_vietnamese_translation():
    found = page_messages()
    missing = [f"{found[m]}: {m!r}" for m in i18n.untranslated(sorted(found), lang="vi", domain="web")]
    assert missing == [], "no Vietnamese translation in web.po for:\n" + "\n".join(missing)


def test_translations_keep_their_placeholders():
    catalog = i18n.catalog("vi", "web")
    wrong = []
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        want = set(PLACEHOLDER.findall(ids[0]))
        wrong += [ids[0] for s in strings if set(PLACEHOLDER.findall(s)) != want]
    assert wrong == []


def test_a_page_renders_in_both_languages():
    vi = render("error.html", "vi", prefix="/web", path="/web/x", caller=None, session=None, status_code=404,
                detail="no tenant named x", hint=None, items=[])
    en = render("error.html", "en", prefix="/web", path="/web/x", caller=None, session=None, status_code=404,
                detail="no tenant named x", hint=None, items=[])
    assert "Không thực hiện được" in vi and "Not possible" in en
