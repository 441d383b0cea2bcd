"""`--report DIR`: a self-contained HTML page to decide what to delete, plus the length histograms as standalone SVG
pictures. Every finding gets a section: why it matters (from the catalogue), the numbers and lines of its records to
copy, and the records themselves, read again from the file: copies and conflicts side by side with the words in
which they differ marked, a flagged record with the spot it is flagged for marked. The advisor's signals are at the
end, folded."""

from __future__ import annotations

import html
from pathlib import Path

from advisor.audit.catalog import catalog
from advisor.audit.html_records import (
    ShownRecord,
    load_records,
    mark_differences,
    mark_finding,
    record_html,
)
from advisor.audit.report import AuditReport, Finding
from core.files import atomic_write

COLOURS = {"error": "#b03a2e", "warning": "#b9770e", "info": "#2874a6"}
GROUPS_SHOWN = 6  # groups of copies shown per finding
EXACT_GROUPS_SHOWN = 3  # exact copies look alike: fewer of their groups
MEMBERS_SHOWN = 4  # records of one group shown side by side
RECORDS_SHOWN = 4  # flagged records shown per record-level finding
IDS_LISTED = 300  # record numbers listed to copy per finding
GROUP_ADVICE = {
    "exact_duplicate": "Each row is one group of copies: keep the first record, delete the others.",
    "near_duplicate": "Each row is one group of near-copies, the words that differ from the first record marked: "
                      "keep one of them unless the marked words matter.",
    "conflicting_answers": "Each row is one prompt given different answers, the differing words marked: keep the "
                           "right answer and delete the others (or fix them).",
    "pair_contradiction": "Each row is one prompt judged both ways, the differing words marked: keep one verdict.",
}
STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1280px;padding:0 1em;color:#222;
line-height:1.4}h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;font-size:14px;
text-align:left}th{background:#f4f6f7}td.n{text-align:right}
section.finding{border-left:5px solid var(--c);padding:.2em 0 .6em 1em;margin:1.4em 0}
section.finding h3{margin:.2em 0;color:var(--c)}.why{color:#555;font-size:14px;margin:.2em 0}
.ids{font-family:ui-monospace,monospace;font-size:12px;background:#f7f7f7;padding:4px 6px;word-break:break-word}
.group{margin:.8em 0}.gh{font-size:13px;color:#555;margin-bottom:3px}
.side{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:8px}
.rec{border:1px solid #ccd;border-radius:4px;background:#fbfbfd;font-size:13px;min-width:0}
.rh{background:#eef0f5;padding:3px 8px;font-size:12px}.m{padding:4px 8px;border-top:1px solid #eee}
.role{display:inline-block;font-size:11px;color:#fff;background:#7f8c8d;border-radius:3px;padding:0 5px}
.t{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace;font-size:12px;margin-top:2px}
mark{background:#ffd54f;padding:0 1px;border-radius:2px}.cut,.empty{color:#888;font-style:italic}
.raw{white-space:pre-wrap;margin:0;padding:4px 8px;font-size:12px}.more{font-size:13px;color:#555}
.hists{display:flex;flex-wrap:wrap;gap:16px}details{margin:1em 0}summary{cursor:pointer;font-weight:bold}
.tasks td.ex{font-family:ui-monospace,monospace;font-size:12px;max-width:520px;word-break:break-word}"""


# ---- histograms --------------------------------------------------------------------------------------------------

def _nice_ticks(top: int) -> list[int]:
    """Three to six round count ticks from 0 to at least `top`."""
    step = 1
    while top / step > 5:
        for m in (2, 5, 10):
            if top / (step * m) <= 5:
                step *= m
                break
        else:
            step *= 10
    return list(range(0, top + step, step)) if top else [0, 1]


def histogram_svg(hist: dict, title: str, width: int = 600, height: int = 240) -> str:
    """Bars with their counts on top, count gridlines, and the bin edges under the axis."""
    edges, counts = hist.get("edges", []), hist.get("counts", [])
    pad_l, pad_r, pad_b, pad_t = 46, 12, 42, 30
    w, h = width - pad_l - pad_r, height - pad_b - pad_t
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11" role="img"><title>{html.escape(title)}</title>',
             f'<text x="{width / 2}" y="15" text-anchor="middle" font-size="13">{html.escape(title)}</text>']
    if counts:
        ticks = _nice_ticks(max(counts))
        top, bw = ticks[-1] or 1, w / len(counts)
        for t in ticks:
            y = pad_t + h - h * t / top
            parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{pad_l + w}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                         f'<text x="{pad_l - 5}" y="{y + 4:.1f}" text-anchor="end">{t}</text>')
        for i, c in enumerate(counts):
            bh = max(h * c / top, 2.0 if c else 0.0)  # a count of 1 next to hundreds still shows
            x = pad_l + i * bw
            parts.append(f'<rect class="bar" x="{x + 1:.1f}" y="{pad_t + h - bh:.1f}" width="{max(bw - 2, 1):.1f}" '
                         f'height="{bh:.1f}" fill="#2e86c1"><title>{edges[i]}–{edges[i + 1] - 1} tokens: {c} '
                         f'records</title></rect>')
            if c and bw >= 16:
                parts.append(f'<text x="{x + bw / 2:.1f}" y="{pad_t + h - bh - 3:.1f}" text-anchor="middle" '
                             f'font-size="10">{c}</text>')
        step = max(1, round(len(edges) / 8))
        for i in range(0, len(edges), step):
            parts.append(f'<text x="{pad_l + i * bw:.1f}" y="{pad_t + h + 14}" text-anchor="middle">{edges[i]}</text>')
    scale = "log scale" if hist.get("scale") == "log" else "bins of equal width"
    parts.append(f'<text x="{pad_l + w / 2}" y="{height - 8}" text-anchor="middle">tokens ({scale})</text>')
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" stroke="#555"/></svg>')
    return "".join(parts)


# ---- findings ----------------------------------------------------------------------------------------------------

def _wanted(findings: list[Finding]) -> set[int]:
    """The records the page shows."""
    want: set[int] = set()
    for f in findings:
        if f.groups:
            want.update(i for g in f.groups[:GROUPS_SHOWN] for i in g[:MEMBERS_SHOWN])
        elif f.records and f.code != "mixed_tasks":
            want.update(f.records[:RECORDS_SHOWN])
    return want


def _ids(f: Finding) -> str:
    if not f.records:
        return ""
    lines = f.line or []
    shown = [f"{r} (l.{lines[i]})" if i < len(lines) and lines[i] else str(r)
             for i, r in enumerate(f.records[:IDS_LISTED])]
    more = f" … and {len(f.records) - IDS_LISTED:,} more" if len(f.records) > IDS_LISTED else ""
    what = "each group's records after the first (and lines)" if f.groups else "records (and lines)"
    return f'<p class="ids" title="record numbers count from 0">{what}: {", ".join(shown)}{more}</p>'


def _group_html(f: Finding, records: dict[int, ShownRecord]) -> str:
    out = []
    for n, g in enumerate(f.groups):
        if n >= (EXACT_GROUPS_SHOWN if f.code == "exact_duplicate" else GROUPS_SHOWN):
            break
        shown = {i: records[i].fresh() for i in g[:MEMBERS_SHOWN] if i in records}
        if f.code != "exact_duplicate":
            mark_differences(list(shown.values()))
        sim = f" · lowest similarity {f.similarity[n]:.2f}" if f.similarity and n < len(f.similarity) else ""
        more = f" · {len(g) - MEMBERS_SHOWN} more not shown: {', '.join(map(str, g[MEMBERS_SHOWN:][:30]))}" \
            if len(g) > MEMBERS_SHOWN else ""
        cards = "".join(record_html(shown.get(i), i, "first" if k == 0 else "") for k, i in enumerate(g[:MEMBERS_SHOWN]))
        out.append(f'<div class="group"><div class="gh">group {n + 1}: records {", ".join(map(str, g[:12]))}'
                   f'{" …" if len(g) > 12 else ""}{sim}{more}</div><div class="side">{cards}</div></div>')
    if len(f.groups or []) > len(out):
        out.append(f'<p class="more">{len(f.groups) - len(out)} more groups not shown (their records after the first are '
                   f'in the list above).</p>')
    return "".join(out)


def _records_html(f: Finding, records: dict[int, ShownRecord]) -> str:
    lines = f.line or []
    cards = []
    for k, i in enumerate(f.records[:RECORDS_SHOWN]):
        rec, detail = records.get(i), (f.details or {}).get(i)
        if rec is not None:
            rec = rec.fresh()
            mark_finding(rec, f.code, detail)
        cards.append(record_html(rec, i, detail or "", lines[k] if k < len(lines) else None))
    more = (f'<p class="more">{f.count - RECORDS_SHOWN:,} more records not shown.</p>'
            if f.count > RECORDS_SHOWN else "")
    return f'<div class="side">{"".join(cards)}</div>{more}'


def _tasks_html(clusters: list[dict]) -> str:
    rows = "".join(
        f'<tr><td>{html.escape(c["label"])}</td><td class="n">{c["size"]:,}</td><td class="n">{c["share"]:.0%}</td>'
        f'<td class="ex">{"<hr>".join(html.escape(e) for e in c["examples"]) or "—"}</td></tr>' for c in clusters)
    return (f'<table class="tasks"><tr><th>task</th><th>records</th><th>share</th><th>two examples</th></tr>{rows}'
            f'</table>')


def finding_html(f: Finding, records: dict[int, ShownRecord], clusters: list[dict]) -> str:
    entry = catalog().get(f.code)
    title = entry.title if entry else ""
    why = f'<p class="why">{html.escape(entry.rationale)}</p>' if entry else ""
    if f.groups:
        body = f'<p class="why">{GROUP_ADVICE.get(f.code, "")}</p>{_group_html(f, records)}'
    elif f.code == "mixed_tasks":
        body = _tasks_html(clusters)
    elif f.records:
        body = _records_html(f, records)
    else:
        body = ""
    return (f'<section class="finding" id="f-{f.code}" style="--c:{COLOURS[f.severity]}"><h3>{f.severity}: '
            f'<code>{f.code}</code> — {html.escape(title)}</h3><p>{html.escape(f.message)}</p>{why}{_ids(f)}{body}'
            f'</section>')


def overview_html(findings: list[Finding]) -> str:
    if not findings:
        return "<p>No findings: nothing to delete.</p>"
    rows = "".join(f'<tr><td style="color:{COLOURS[f.severity]}">{f.severity}</td><td><a href="#f-{f.code}">'
                   f'<code>{f.code}</code></a></td><td class="n">{f.count:,}</td><td>{html.escape(f.message)}</td>'
                   f'</tr>' for f in findings)
    return f"<table><tr><th>severity</th><th>finding</th><th>count</th><th>what</th></tr>{rows}</table>"


# ---- the page ----------------------------------------------------------------------------------------------------

def write_report(report: AuditReport, folder: str | Path) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    hists = report.stats.get("histograms", {})
    svgs = {k: histogram_svg(v, f"{k} length: records per token count") for k, v in hists.items()}
    for k, svg in svgs.items():
        atomic_write(out / f"{k}_lengths.svg", svg)
    findings = report.worst_first()
    records = load_records(report.path, report.format, _wanted(findings))
    clusters = report.stats.get("task_clusters", [])
    return atomic_write(out / "index.html", page_html(report, findings, records, clusters, svgs))


def page_html(report: AuditReport, findings: list[Finding], records: dict[int, ShownRecord], clusters: list[dict],
              svgs: dict[str, str]) -> str:
    t, sig = report.stats["tokens"], report.signals
    errors = report.error_records()
    sections = "".join(finding_html(f, records, clusters) for f in findings)
    tasks = ("" if any(f.code == "mixed_tasks" for f in findings) or not clusters else
             f"<h2>Tasks</h2><p>about {sig.estimated_tasks} task(s), by "
             f"{html.escape(report.stats.get('task_method', ''))}; each with two of its instructions</p>"
             f"{_tasks_html(clusters)}")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>tunewise audit: {html.escape(report.path)}</title>
<style>{STYLE}</style></head><body>
<h1>Audit of <code>{html.escape(report.path)}</code></h1>
<p>format <b>{html.escape(report.format)}</b> · {report.records:,} records · {report.valid_records:,} valid ·
<b>{sig.usable_examples if sig.usable_examples is not None else sig.examples:,}</b> usable examples ·
{errors:,} records with errors · {sig.exact_copies:,} exact copies · about {sig.estimated_tasks} task(s) ·
content: {sig.content}</p>
<p class="why">Record numbers count from 0; lines are the file's lines. Tokens counted by
{html.escape(report.stats['token_counting'])}.</p>
<h2>Findings</h2>{overview_html(findings)}{sections}{tasks}
<h2>Lengths</h2><p>prompt p50 {t['prompt']['p50']} / p90 {t['prompt']['p90']} / max {t['prompt']['max']} tokens;
answer p50 {t['answer']['p50']} / p90 {t['answer']['p90']} / max {t['answer']['max']} tokens</p>
<div class="hists">{''.join(svgs.values())}</div>
<details id="signals"><summary>Signals for the advisor (JSON, what <code>tunewise recommend</code> reads)</summary>
<pre>{html.escape(sig.model_dump_json(indent=2))}</pre></details>
</body></html>"""
