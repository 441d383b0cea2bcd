"""The audit's HTML report (`tunewise audit DATA --report DIR`): a page a person reads to decide what to delete.
The records of copies and conflicts side by side with their differences marked, flagged records with the flagged
spot marked (also deep inside a long message), text escaped once and never cut inside an entity, histograms with
bins where the lengths are, the signals folded; and the page as a real headless Chromium lays it out."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from advisor.audit import audit_file
from advisor.audit.html import write_report
from advisor.audit.run import LOG_BINS_SPAN, LOG_BULK_SPAN, _histogram
from advisor.cli.demo.pipeline import asset


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def section(page: str, code: str) -> str:
    m = re.search(rf'<section class="finding" id="f-{code}".*?</section>', page, re.S)
    assert m, f"no section for {code}"
    return m.group()


def cards(sec: str) -> list[str]:
    return re.findall(r'<article class="rec">.*?</article>', sec, re.S)


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("demo-report")
    write_report(audit_file(asset("tickets.jsonl")), out)
    return (out / "index.html").read_text(encoding="utf-8")


def test_conflict_shown_side_by_side_with_the_differing_words_marked(demo_page):
    sec = section(demo_page, "conflicting_answers")
    a, b = cards(sec)
    assert "<b>record 5</b> · line 6" in a and "<b>record 60</b> · line 61" in b
    assert "My invoice for the headphones shows the wrong amount." in a and "shows the wrong amount." in b
    # the prompts are the same: only the answers' differing words are marked, on both sides
    assert re.findall(r"<mark>(.*?)</mark>", a) == ["billing", "medium"]
    assert re.findall(r"<mark>(.*?)</mark>", b) == ["refund", "low"]
    assert '<div class="side">' in sec


def test_copies_listed_for_deletion_and_near_copies_marked(demo_page):
    exact = section(demo_page, "exact_duplicate")
    assert "group 1: records 0, 244" in exact and "keep the first record, delete the others" in exact
    assert "10 (l.11), 11 (l.12)" in exact  # the planted copies of records 3 and 4, to delete
    assert "<mark>" not in exact  # exact copies: nothing to mark
    near = section(demo_page, "near_duplicate")
    first, second = cards(near)[:2]
    assert "<b>record 16</b>" in first and "<b>record 116</b>" in second
    assert re.findall(r"<mark>(.*?)</mark>", first) == ["Hi"] and re.findall(r"<mark>(.*?)</mark>", second) == ["Hello"]


def test_flagged_records_show_the_flagged_spot(demo_page):
    leak = section(demo_page, "template_leak")
    assert '{&quot;category&quot;: &quot;technical&quot;, &quot;priority&quot;: &quot;high&quot;}' \
           "<mark>&lt;|im_end|&gt;</mark>" in leak
    assert "<mark>jordan.miles@fastmail.com</mark>" in section(demo_page, "pii")
    assert "Hi <mark>{{customer_name}}</mark>, my laptop" in section(demo_page, "placeholder")
    empty = section(demo_page, "empty_output")
    assert "(empty)" in empty and "(only whitespace, 1 character(s))" in empty


def test_task_clusters_show_two_examples(demo_page):
    report = audit_file(asset("tickets.jsonl"))
    (cluster,) = report.stats["task_clusters"]
    assert cluster["label"] == "system prompt #1" and len(cluster["examples"]) == 2
    assert all(e in demo_page for e in cluster["examples"])


def test_signals_folded(demo_page):
    m = re.search(r"<details id=\"signals\"><summary>.*?</summary>\s*<pre>(.*?)</pre></details>", demo_page, re.S)
    assert m and '&quot;usable_examples&quot;: 269' in m.group(1)


def test_long_record_escaped_once_clipped_around_the_leak(tmp_path):
    filler = 'He said "stop" & left <early>. ' * 200  # 6,000 characters of quotes, ampersands and angle brackets
    rows = [chat(f"question {i} about tea", f"Answer {i}: steep it for {i + 2} minutes.") for i in range(20)]
    rows.append(chat("Summarise the talk.", filler + "### Response: done <|im_end|> " + filler))
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    write_report(audit_file(p), tmp_path / "rep")
    page = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    sec = section(page, "template_leak")
    assert "### Response: done <mark>&lt;|im_end|&gt;</mark> He said" in sec  # the leak, 6,000 characters in
    assert sec.count("characters …]") == 2 and len(sec) < 4000  # the long message clipped around it
    assert "&amp;quot;" not in page and "&amp;amp;" not in page and '\\"' not in page  # escaped once, no JSON escapes
    assert not re.search(r"&(?!(?:amp|lt|gt|quot|#x27);)", page)  # every & starts a whole entity
    assert "He said &quot;stop&quot; &amp; left &lt;early&gt;." in sec
    words = {"He", "said", "&quot;stop&quot;", "&amp;", "left", "&lt;early&gt;."}  # cuts fall between words
    assert set(re.findall(r'characters …\]</span>([^<\s]+)', sec)) <= words
    assert set(re.findall(r'([^>\s]+)<span class="cut">', sec)) <= words


def test_preference_pair_shows_both_sides(tmp_path):
    rows = [{"prompt": f"Name a colour {i}.", "chosen": "Blue.", "rejected": "Red."} for i in range(3)]
    rows.append({"prompt": "Name a colour 0.", "chosen": "Red.", "rejected": "Blue."})
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    write_report(audit_file(p), tmp_path / "rep")
    sec = section((tmp_path / "rep" / "index.html").read_text(encoding="utf-8"), "pair_contradiction")
    a, b = cards(sec)
    assert "rejected assistant" in a and "<b>record 3</b>" in b
    assert re.findall(r"<mark>(.*?)</mark>", b) == ["Red", "Blue"]


def test_histogram_bins_follow_the_lengths():
    assert (LOG_BINS_SPAN, LOG_BULK_SPAN) == (20, 2)
    narrow = _histogram(list(range(45, 57)) * 5)
    assert narrow["scale"] == "linear" and narrow["edges"][0] == 45 and narrow["edges"][-1] >= 57
    assert sum(c > 0 for c in narrow["counts"]) == 12  # one bar per length, not one bar on a log axis
    wide = _histogram([3, 30, 300, 3000])
    assert wide["scale"] == "log" and sum(c > 0 for c in wide["counts"]) == 4
    outliers = _histogram([17] * 97 + [1, 2, 25])  # empty answers do not put the answers on a log axis
    assert outliers["scale"] == "linear" and (outliers["edges"][8], outliers["counts"][8]) == (17, 97)
    assert _histogram([])["counts"] == []


# ---- in a real browser -------------------------------------------------------------------------------------------

MEASURE = """<script>
const box = e => e.getBoundingClientRect();
const groups = [...document.querySelectorAll('.group')].map(g => [...g.querySelectorAll('.rec')].map(box));
const out = {
  signals_height: box(document.querySelector('#signals')).height,
  signals_shown: document.querySelector('#signals pre').checkVisibility(),
  groups_side_by_side: groups.filter(g => g.length > 1).every(g => g.every(r => Math.abs(r.top - g[0].top) < 2)
                                                              && g[1].left > g[0].right),
  groups: groups.length,
  marks_visible: [...document.querySelectorAll('mark')].filter(m => box(m).width > 0 && box(m).height > 0).length,
  marks: document.querySelectorAll('mark').length,
  bars: [...document.querySelectorAll('svg')].map(s => [...s.querySelectorAll('rect.bar')]
                                                 .filter(r => box(r).height >= 1).length),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  page_height: document.documentElement.scrollHeight,
};
const p = document.createElement('pre'); p.id = 'measured'; p.textContent = JSON.stringify(out);
document.body.appendChild(p);
</script></body>"""


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None)


def browse(browser: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1280,900", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(chromium() is None, reason="no Chromium on this machine (`make test` installs Debian's "
                                                 "`chromium` where it runs as root with apt-get)")
def test_report_in_a_real_browser(tmp_path):
    browser = chromium()
    write_report(audit_file(asset("tickets.jsonl")), tmp_path / "rep")
    page = tmp_path / "rep" / "index.html"
    shot = tmp_path / "report.png"
    proc = browse(browser, page, f"--screenshot={shot}")
    assert shot.is_file(), proc.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (900, 1280) and pixels.std() > 0.05  # a drawn page, not a blank one
    measured = tmp_path / "rep" / "measured.html"
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE), encoding="utf-8")
    dom = browse(browser, measured, "--dump-dom").stdout
    m = json.loads(re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
    assert m["signals_height"] < 40 and m["signals_shown"] is False  # folded to one line until opened
    assert m["groups_side_by_side"] and m["groups"] == 6 + 3 + 1  # near copies, exact copies, the conflict
    assert m["marks"] >= 10 and m["marks_visible"] == m["marks"]
    assert m["bars"] == [20, 4]  # a bar per prompt length 37-56; the answers' 17 tokens (297), 4, 5 and 22 tokens
    assert m["overflow"] <= 0  # nothing wider than the window


def test_a_record_under_two_findings_gets_each_findings_marks_only(tmp_path):
    rows = [chat(f"question {i} about tea", f"Answer {i}: steep it for {i + 2} minutes.") for i in range(20)]
    rows.append(chat("Mail me at ana.lopez@kmail.org please", "Sure.<|im_end|>"))
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    write_report(audit_file(p), tmp_path / "rep")
    page = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<mark>(.*?)</mark>", section(page, "pii")) == ["ana.lopez@kmail.org"]
    assert re.findall(r"<mark>(.*?)</mark>", section(page, "template_leak")) == ["&lt;|im_end|&gt;"]
