"""The example tenant's dossier as an inspector sees it: the HTML file rendered by Debian's
headless Chromium (D's `page` fixture), checked in the rendered DOM for the level, every control
row (with the status the JSON gives it) and the audit chain head; the screenshot is saved
under the test's tmp dir (`screenshots/dossier.png`)."""

from __future__ import annotations

from tests.compliance.test_dossier import run_dossier

STATUS_VI = {"pass": "Đạt", "fail": "Không đạt", "error": "Lỗi kiểm tra", "not_applicable": "Không áp dụng",
             "not_checked": "Chưa kiểm tra"}


def test_example_dossier_in_chromium(world, capsys, page, screenshots):
    dossier = run_dossier(world, capsys)
    page.goto((world.out / "byt-his-staging.html").resolve().as_uri())
    shot = screenshots.shot(page, "dossier")
    assert shot.stat().st_size > 50_000  # a full page, not a blank one

    level = page.locator("#level")
    assert level.is_visible()
    assert f"Cấp độ {dossier['classification']['level']}" in level.inner_text()
    assert dossier["classification"]["rulebookVersion"] in page.locator("#rulebook").inner_text()

    rows = page.locator("tr.control")
    assert rows.count() == len(dossier["controls"])
    for control in dossier["controls"]:
        row = page.locator(f"tr.control[data-control='{control['id']}']")
        assert row.is_visible(), control["id"]
        text = row.inner_text()
        assert control["id"] in text and control["title"] in text
        assert row.get_attribute("data-status") == control["status"]
        assert STATUS_VI[control["status"]] in row.locator("td.status").inner_text()
        for host in control["hosts"]:
            cell = row.locator(f"td[data-host='{host['host']}']")
            assert cell.get_attribute("data-status") == host["status"]

    head = dossier["governance"]["audit"]
    head_text = page.locator("#audit-head-hash").inner_text()
    assert head["headHash"] in head_text and f"#{head['headSeq']}" in head_text
    assert page.locator("#audit-head").is_visible()
    assert "Không áp dụng tại đây" in page.locator("#not-applicable").inner_text()
    # no script ever: the page is a document
    assert page.evaluate("document.scripts.length") == 0
