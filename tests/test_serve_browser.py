"""The server's web page in a real browser: Debian's headless chromium driven by Playwright (no browser download;
`.ci/run` installs chromium when it is absent). Types a text and reads the label and the bars; several lines give a
table; uploads a file with one bad row and reads the table, the bad-row report and the JSONL download; screenshots
go to the test's tmp dir."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from senti_lit.inference.predictor import Predictor
from senti_lit.serving.process import running_server

ARTIFACT = Path(__file__).parent / "fixtures" / "artifact_v1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# offline and quiet: no first-run, sync, update or other background traffic
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-default-apps"]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install "
                                                                     "chromium; .ci/run does)")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with running_server(ARTIFACT, tmp_path_factory.mktemp("serve") / "server.log", "log_level=warning") as running:
        yield running


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(server.url + "/")
        page.wait_for_function("document.getElementById('model-name').textContent === 'artifact_v1'")
        yield page
        assert not errors, errors  # no script error, no failed request
        browser.close()


def test_type_a_text_and_read_the_label_and_bars(page, tmp_path: Path):
    text = "这本书很好，推荐"
    expected = Predictor.load(ARTIFACT).predict([text])[0]
    assert "negative" in page.inner_text("#model-meta") and "test accuracy" in page.inner_text("#model-meta")
    assert not page.is_visible("#download-jsonl") and not page.is_visible("#error")  # nothing to show yet
    page.fill("#text", text)
    page.click("#classify")
    page.wait_for_selector("#label")
    assert page.inner_text("#label") == expected["label"]
    rows = page.query_selector_all("#result .bar-row")
    bars = {r.get_attribute("data-label"): float(r.get_attribute("data-prob")) for r in rows}
    assert bars == pytest.approx(expected["probs"], abs=1e-6)
    for row in rows:  # each bar is drawn as wide as its probability
        track = row.query_selector(".track").bounding_box()["width"]
        fill = row.query_selector(".fill").bounding_box()["width"]
        assert fill / track == pytest.approx(float(row.get_attribute("data-prob")), abs=0.02)
    on = page.query_selector_all("#result .bar-row.on")
    assert [r.get_attribute("data-label") for r in on] == [expected["label"]]
    page.screenshot(path=str(tmp_path / "one_text.png"), full_page=True)

    # several lines: a table, one row per line, in order
    lines = ["这本书很好，推荐", "失望，很差", "The room was clean."]
    page.fill("#text", "\n".join(lines) + "\n\n")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#result table")
    labels = [a["label"] for a in Predictor.load(ARTIFACT).predict(lines)]
    assert page.eval_on_selector_all("#result tbody tr", "rows => rows.map(r => r.dataset.label)") == labels
    assert page.eval_on_selector_all("#result td.text", "cells => cells.map(c => c.textContent)") == lines


def test_upload_a_file_with_a_bad_row(page, tmp_path: Path):
    source = tmp_path / "reviews.jsonl"
    good = ["这家酒店很干净，服务也很热情", "房间太小了，隔音很差", "Great value for the price", "一般般吧"]
    lines = [json.dumps({"text": t}, ensure_ascii=False) for t in good]
    lines.insert(2, '{"text": "broken')  # line 3: bad JSON
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    page.set_input_files("#file", str(source))
    page.wait_for_selector("#file-result table")
    report = page.inner_text("#skipped")
    assert "4 rows read, 1 skipped" in report and "line 3: invalid JSON" in report
    assert page.eval_on_selector_all("#file-result td.num", "c => c.map(x => x.textContent)") == ["1", "2", "4", "5"]
    assert page.eval_on_selector_all("#file-result td.text", "c => c.map(x => x.textContent)") == good
    expected = Predictor.load(ARTIFACT).predict(good)
    with page.expect_download() as download:
        page.click("#download-jsonl")
    saved = tmp_path / "predictions.jsonl"
    download.value.save_as(saved)
    records = [json.loads(line) for line in saved.read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["text"], r["label"]) for r in records] == [
        (n, t, e["label"]) for n, t, e in zip((1, 2, 4, 5), good, expected)]
    with page.expect_download() as download:
        page.click("#download-csv")
    csv = download.value.path().read_text(encoding="utf-8-sig").splitlines()
    assert csv[0] == "line,text,label,confidence,p_negative,p_positive,truncated" and len(csv) == 5
    # the screenshot a colleague would see: a text's bars above, the file's table below
    page.fill("#text", "这家酒店很干净，服务也很热情")
    page.click("#classify")
    page.wait_for_selector("#label")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_the_csv_download_escapes_formulas(page, tmp_path: Path):
    """OWASP's CSV injection: texts starting with = + - @ are prefixed with ' in the download; numbers stay numbers."""
    source = tmp_path / "formulas.txt"
    texts = ['=HYPERLINK("http://example.invalid","click")', "+1 好评", "-差评", "@某人 很好", "很好"]
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    page.set_input_files("#file", str(source))
    page.wait_for_selector("#file-result table")
    with page.expect_download() as download:
        page.click("#download-csv")
    import csv

    rows = list(csv.DictReader(download.value.path().read_text(encoding="utf-8-sig").splitlines()))
    assert [r["text"] for r in rows] == ["'" + t for t in texts[:4]] + [texts[4]]
    assert all(0.0 <= float(r["p_positive"]) <= 1.0 and not r["p_positive"].startswith("'") for r in rows)


def test_on_a_phone_the_text_column_gets_the_width(server, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        page.goto(server.url + "/")
        page.wait_for_function("document.getElementById('model-name').textContent === 'artifact_v1'")
        page.fill("#text", "The room was clean and the staff were friendly\n这家酒店很干净，服务也很热情")
        page.click("#classify")
        page.wait_for_selector("#result table")
        widths = page.eval_on_selector_all("#result td.text", "c => c.map(x => x.getBoundingClientRect().width)")
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        assert min(widths) > 150, widths  # was 35 px: words broke mid-word
        # a Latin word is not broken across lines: "friendly" stays whole
        assert page.evaluate("document.body.scrollWidth") <= 390
        browser.close()


def test_the_api_key_box_says_what_happened(tmp_path: Path):
    """Wrong key: a message in the key box; Enter in the key field sends it; the right key clears every message."""
    from playwright.sync_api import sync_playwright

    with running_server(ARTIFACT, tmp_path / "server.log", "log_level=warning", "api_key_env=SENTI_PAGE_KEY",
                        env={"SENTI_PAGE_KEY": "right-key"}) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_context().new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#key-box:not([hidden])")
        assert "needs an API key" in page.inner_text("#key-status")
        page.fill("#key", "wrong-key")
        page.press("#key", "Enter")
        page.wait_for_function("document.getElementById('key-status').textContent.includes('refused')")
        page.fill("#key", "right-key")
        page.press("#key", "Enter")
        page.wait_for_function("document.getElementById('model-name').textContent === 'artifact_v1'")
        assert page.is_hidden("#key-box") and page.is_hidden("#error") and page.is_hidden("#key-status")
        browser.close()
