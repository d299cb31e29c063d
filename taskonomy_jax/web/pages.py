"""HTML of the pages, built with escaped strings (no template engine, no script from users).

Every value that came from a request goes through `html.escape` before it reaches a page.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence

from taskonomy_jax import tasks
from taskonomy_jax.taxonomy import published
from taskonomy_jax.web.errors import WebError

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#26415e;color:#fff;padding:10px 20px}
header a{color:#fff;margin-right:18px;text-decoration:none;font-weight:600}
main{padding:14px 20px;max-width:1200px}
form{background:#fff;border:1px solid #ddd;padding:12px;border-radius:6px;margin-bottom:14px}
label{display:inline-block;margin:4px 14px 4px 0}
input[type=text]{width:420px}
input#budget{width:60px}
.error{background:#fde8e8;border:1px solid #c0392b;color:#8e1c12;padding:10px;border-radius:6px;
margin-bottom:12px}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px}
th{background:#eef2f6}
pre{background:#fff;border:1px solid #ddd;padding:8px;max-height:300px;overflow:auto;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.panel{background:#fff;border:1px solid #ddd;padding:6px;text-align:center;font-size:13px}
.panel img{width:160px;height:160px;image-rendering:pixelated;display:block}
img.graph{max-width:100%;background:#fff;border:1px solid #ddd}
"""


def _layout(title: str, body: str) -> str:
  return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
          f"</title><style>{_CSS}</style></head><body><header><a href='/transfer'>Transfer API</a>"
          f"<a href='/demo'>Live demo</a><a href='/api/tasks'>Tasks (JSON)</a></header>"
          f"<main><h2>{html.escape(title)}</h2>{body}</main></body></html>")


def error_box(err: WebError | None) -> str:
  if err is None:
    return ""
  extra = ""
  if err.suggestions:
    extra = " Suggestions: " + ", ".join(f"<code>{html.escape(s)}</code>" for s in err.suggestions)
  return (f"<div class=error id=error data-kind='{html.escape(err.kind)}'><b>Error "
          f"{err.status}:</b> {html.escape(err.message)}{extra}</div>")


def error_page(title: str, message: str) -> str:
  return _layout(title, f"<div class=error id=error>{html.escape(message)}</div>")


def _v(fields: Mapping[str, str], key: str, default: str = "") -> str:
  return html.escape(str(fields.get(key, default) or default), quote=True)


def _data_label(data: str) -> str:
  if data == "upload":
    return "my affinities (upload JSON)"
  if data in published.COMPUTED:
    return f"computed: {data} world, every task (docs/taxonomy_cpu_full)"
  return f"published {data}"


def transfer_page(fields: Mapping[str, str], data_choices: Sequence[str],
                  err: WebError | None = None, tax: dict | None = None,
                  graph_png: str = "") -> str:
  """The transfer-API page: the form, then (if solved) the graph, the table and the JSON."""
  names = "".join(f"<option value='{t.name}'>{html.escape(t.title)}</option>"
                  for t in tasks.all_tasks())
  order = str(fields.get("order", "1"))
  orders = "".join(f"<option{' selected' if str(k) == order else ''}>{k}</option>"
                   for k in range(1, 5))
  data = str(fields.get("data", "default"))
  datas = "".join(f"<option value='{d}'{' selected' if d == data else ''}>{_data_label(d)}"
                  "</option>" for d in data_choices)
  form = f"""
<form id=transfer-form method=post action=/transfer enctype=multipart/form-data>
<label>Targets <input type=text name=targets id=targets list=task-names
 value='{_v(fields, "targets")}' placeholder='normal, reshading, depth_zbuffer'></label><br>
<label>Affordable sources (empty: all) <input type=text name=sources id=sources
 value='{_v(fields, "sources")}' placeholder='all tasks'></label><br>
<label>Budget <input type=text name=budget id=budget size=5 value='{_v(fields, "budget", "2")}'>
</label>
<label>Max order <select name=order id=order>{orders}</select></label>
<label>Data <select name=data id=data>{datas}</select></label>
<label>Affinity table <input type=file name=affinities id=affinities accept='.json'></label>
<datalist id=task-names>{names}</datalist>
<button type=submit id=solve>Solve</button>
</form>"""
  result = ""
  if tax is not None:
    rows = "".join(
        f"<tr><td>{html.escape(s['title'])}</td><td>{html.escape(s['served_by'])}</td>"
        f"<td>{html.escape(' + '.join(s['sources']))}</td><td>{s['order']}</td>"
        f"<td>{s['affinity']:.4f}</td><td>{_num(s['quality'])}</td><td>{_num(s['gain'])}</td>"
        "</tr>" for s in tax["served"])
    sup = ", ".join(html.escape(s["title"]) for s in tax["supervised"]) or "nothing"
    result = f"""
<p id=summary>Supervise <b>{sup}</b> (cost {tax['cost']:g} of budget {tax['budget']:g});
mean Quality {_num(tax['mean_quality'])}, mean Gain {_num(tax['mean_gain'])}.</p>
<img class=graph id=graph alt='taxonomy graph' src='data:image/png;base64,{graph_png}'>
<h3>Chosen transfers</h3>
<table id=transfers><tr><th>target</th><th>served by</th><th>sources</th><th>order</th>
<th>affinity</th><th>Quality</th><th>Gain</th></tr>{rows}</table>
<h3>JSON</h3><pre id=json>{html.escape(json.dumps(tax, indent=1))}</pre>"""
  intro = ("<p>Choose target tasks, the tasks you can afford to label, a supervision budget and "
           "the maximum transfer order; the page solves the paper's binary integer program "
           "(Sec. 3.4) on the published affinities or on yours. The same API: "
           "<code>POST /api/solve</code> with JSON.</p>")
  return _layout("Transfer Learning API", intro + error_box(err) + form + result)


def _num(x: float | None) -> str:
  return "n/a" if x is None else f"{x:.3f}"


def demo_page(examples: Sequence[str], err: WebError | None = None, input_png: str = "",
              panels: Sequence[dict] = (), note: str = "") -> str:
  """The live demo: upload an image (or pick an example), see every task's output."""
  ex = ""
  if examples:
    opts = "".join(f"<option>{html.escape(e)}</option>" for e in examples)
    ex = (f"<label>or a rendered example <select name=example id=example><option value=''>"
          f"(none)</option>{opts}</select></label>")
  form = f"""
<form id=demo-form method=post action=/demo enctype=multipart/form-data>
<label>Image <input type=file name=image id=image accept='image/*'></label>{ex}
<button type=submit id=run>Run every task</button></form>"""
  body = ""
  if panels:
    cells = "".join(
        f"<div class=panel data-task='{html.escape(p['task'])}'><img alt='{html.escape(p['task'])}'"
        f" src='data:image/png;base64,{p['png']}'>{html.escape(p['title'])}</div>"
        for p in panels)
    body = (f"<div class=grid id=outputs><div class=panel data-task=input><img alt=input "
            f"src='data:image/png;base64,{input_png}'>Input</div>{cells}</div>")
  info = f"<p><i>{html.escape(note)}</i></p>" if note else ""
  return _layout("Live demo: every task on one image",
                 info + error_box(err) + form + body)


def index_page() -> str:
  return _layout("Taskonomy", "<ul><li><a href='/transfer'>Transfer Learning API</a></li>"
                 "<li><a href='/demo'>Live demo</a></li></ul>")
