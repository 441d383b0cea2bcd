"""`--report DIR`: a self-contained HTML page (findings table, length histograms as inline SVG) plus the
histograms as standalone SVG pictures."""

from __future__ import annotations

import html
import json
from pathlib import Path

from advisor.audit.report import AuditReport
from advisor.files import atomic_write

COLOURS = {"error": "#c0392b", "warning": "#d68910", "info": "#2874a6"}


def histogram_svg(hist: dict, title: str, width: int = 560, height: int = 220) -> str:
    edges, counts = hist.get("edges", []), hist.get("counts", [])
    pad_l, pad_b, pad_t = 48, 40, 24
    w, h = width - pad_l - 10, height - pad_b - pad_t
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             f'<text x="{width / 2}" y="15" text-anchor="middle" font-size="13">{html.escape(title)}</text>']
    if counts:
        top = max(counts) or 1
        bw = w / len(counts)
        for i, c in enumerate(counts):
            bh = h * c / top
            x = pad_l + i * bw
            parts.append(f'<rect x="{x:.1f}" y="{pad_t + h - bh:.1f}" width="{max(bw - 1, 1):.1f}" height="{bh:.1f}" '
                         f'fill="#2e86c1"><title>{edges[i]}–{edges[i + 1]} tokens: {c}</title></rect>')
        for i in range(0, len(edges), max(1, len(edges) // 6)):
            x = pad_l + i * bw
            parts.append(f'<text x="{x:.1f}" y="{pad_t + h + 14}" text-anchor="middle">{edges[i]}</text>')
        parts.append(f'<text x="{pad_l - 6}" y="{pad_t + 8}" text-anchor="end">{top}</text>')
        parts.append(f'<text x="{pad_l - 6}" y="{pad_t + h}" text-anchor="end">0</text>')
    parts.append(f'<text x="{pad_l + w / 2}" y="{height - 6}" text-anchor="middle">tokens (log scale)</text>')
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" stroke="#555"/></svg>')
    return "".join(parts)


def write_report(report: AuditReport, folder: str | Path) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    hists = report.stats.get("histograms", {})
    svgs = {k: histogram_svg(v, f"{k} length") for k, v in hists.items()}
    for k, svg in svgs.items():
        atomic_write(out / f"{k}_lengths.svg", svg)
    rows = []
    for f in report.worst_first():
        first = ", ".join(str(r) for r in f.records[:12]) + (" …" if len(f.records) > 12 else "")
        samples = "<br>".join(html.escape(json.dumps(s, ensure_ascii=False))[:400] for s in f.samples)
        rows.append(f'<tr><td style="color:{COLOURS[f.severity]}">{f.severity}</td><td><code>{f.code}</code></td>'
                    f"<td>{f.count}</td><td>{html.escape(f.message)}</td><td>{first}</td><td class=s>{samples}</td></tr>")
    t = report.stats["tokens"]
    sig = report.signals
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tunewise audit: {html.escape(report.path)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ddd;padding:4px 8px;vertical-align:top;font-size:13px}}th{{background:#f4f6f7}}
.s{{font-family:monospace;font-size:11px;color:#444}}</style></head><body>
<h1>Audit of <code>{html.escape(report.path)}</code></h1>
<p>format <b>{report.format}</b> · {report.records} records · {report.valid_records} valid · {sig.usable_examples} usable examples ·
about {sig.estimated_tasks} task(s) · content: {sig.content} · tokens by {html.escape(report.stats['token_counting'])}</p>
<h2>Findings</h2><table><tr><th>severity</th><th>code</th><th>count</th><th>message</th><th>records</th><th>samples</th></tr>
{''.join(rows) or '<tr><td colspan=6>no findings</td></tr>'}</table>
<h2>Lengths</h2><p>prompt p50 {t['prompt']['p50']} / p90 {t['prompt']['p90']} / max {t['prompt']['max']} tokens;
answer p50 {t['answer']['p50']} / p90 {t['answer']['p90']} / max {t['answer']['max']} tokens</p>
{''.join(svgs.values())}
<h2>Signals for the advisor</h2><pre>{html.escape(sig.model_dump_json(indent=2))}</pre>
</body></html>"""
    return atomic_write(out / "index.html", page)
