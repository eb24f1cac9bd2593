"""The page template (Jinja2, autoescaped) with its inline CSS; kept in a module so it always ships.

The Content-Security-Policy allows nothing but inline styles and ``data:`` images: the page loads
no script, font or image from anywhere, even if a future section tried to.
"""

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="caveat {{ report.versions.get('caveat', '') }}">
<title>{{ report.title }}</title>
<style>
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #0969da; --warn: #fff8c5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
a { color: var(--accent); text-decoration: none; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft); padding: 1px 4px; border-radius: 4px; }
.meta { color: var(--muted); margin: 0 0 12px; }
.meta b { color: var(--fg); }
.notice { background: var(--warn); border: 1px solid #d4a72c66; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
nav { display: flex; flex-wrap: wrap; gap: 6px 14px; margin: 14px 0 4px; padding: 8px 12px; background: var(--soft); border-radius: 6px; }
section { margin-top: 30px; }
section > p { margin: 6px 0 10px; max-width: 900px; }
.metrics { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 8px; margin: 0 0 14px; }
.metric { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
.metric .label { color: var(--muted); font-size: 12px; }
.metric .value { font-size: 17px; font-weight: 600; overflow-wrap: anywhere; }
.metric .help { color: var(--muted); font-size: 11px; line-height: 1.3; }
.blocks { display: flex; flex-wrap: wrap; gap: 16px 24px; align-items: flex-start; }
.tblock { flex: 0 1 auto; max-width: 100%; }
.tblock h3 { margin-top: 0; }
figure { margin: 0; flex: 0 1 auto; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 12px; max-width: 540px; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { max-width: 460px; overflow-wrap: break-word; }
td.none { color: var(--muted); text-align: center; }
.explained { max-width: 900px; margin: 6px 0 10px; padding: 4px 10px; border: 1px solid var(--line); border-radius: 6px; overflow-wrap: anywhere; }
.tnote, .empty { color: var(--muted); font-size: 12px; margin: 4px 0 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
</style>
</head>
<body>
<main>
<header>
<h1>{{ report.title }}</h1>
{% if report.runs %}<p class="meta">runs {% for r in report.runs %}<code>{{ r }}</code>{{ ", " if not loop.last }}{% endfor %} &middot; {{ report.task }}
&middot; compared on <b>{{ report.data }}</b> ({{ report.n }} examples) &middot; {{ "all calibrated" if report.calibrated else "not all calibrated" }}
{%- else %}<p class="meta">run <code>{{ report.run }}</code> &middot; {{ report.task }} &middot; evaluated on <b>{{ report.data }}</b>
({{ report.n }} examples from <code>{{ report.source }}</code>) &middot; {{ "calibrated" if report.calibrated else "not calibrated" }}{% endif %}
{%- if report.ood %} &middot; out-of-scope: {{ report.ood | join(", ") }}{% endif %} &middot; {{ report.created }}</p>
{% for note in report.notes %}<p class="notice">{{ note | code }}</p>
{% endfor %}
<nav>{% for s in report.sections %}<a href="#{{ s.key }}">{{ s.title }}</a>{% endfor %}</nav>
</header>
{% for s in report.sections %}
<section id="{{ s.key }}">
<h2>{{ s.title }}</h2>
{% for note in s.notes %}<p>{{ note | code }}</p>
{% endfor %}
{% if s.metrics %}<div class="metrics">
{% for m in s.metrics %}<div class="metric" data-key="{{ m.key }}"><div class="label">{{ m.label }}</div><div class="value">{{ m.value | fmt }}</div>{% if m.help %}<div class="help">{{ m.help }}</div>{% endif %}</div>
{% endfor %}</div>{% endif %}
{% if s.figures or s.tables %}<div class="blocks">
{% for f in s.figures %}{% set png = f | png %}<figure data-key="{{ f.key }}"><img src="{{ png.uri }}" width="{{ png.width }}" height="{{ png.height }}" alt="{{ f.title }}">{% if f.note %}<figcaption>{{ f.note }}</figcaption>{% endif %}</figure>
{% endfor %}
{% for t in s.tables %}<div class="tblock"><h3>{{ t.title }}</h3>
{% if t.rows %}<div class="table"><table data-key="{{ t.key }}">
<thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for cell in row %}<td class="{{ cell | kind }}">{{ cell | fmt }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>{% else %}<p class="empty">(none)</p>{% endif %}
{% if t.note %}<p class="tnote">{{ t.note }}</p>{% endif %}</div>
{% endfor %}</div>{% endif %}
{% for e in s.explanations %}{% if loop.first or e.method != loop.previtem.method %}<h3>Examples: {{ e.method }}</h3>
{% endif %}<div class="explained" data-method="{{ e.method }}">{{ e.attribution | attribution }}</div>
{% endfor %}
</section>
{% endfor %}
<footer>Built by caveat {{ report.versions.get("caveat", "") }}{% for k, v in report.versions.items() if k != "caveat" %} &middot; {{ k }} {{ v }}{% endfor %}.
The numbers of this page are in the JSON file next to it (schema version {{ report.schema_version }}).</footer>
</main>
</body>
</html>
"""  # noqa: E501
