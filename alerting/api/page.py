"""The page behind a message's acknowledge link: shows the alert and signs for / closes it through the
API with the officer's own token (kept in the browser's localStorage; the page itself holds no secret)."""

from __future__ import annotations

import re

from aiohttp import web

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>预警处置 ALERT_ID</title>
<style>body{font-family:sans-serif;max-width:40em;margin:1em auto;padding:0 1em}
pre{white-space:pre-wrap;background:#f4f4f4;padding:.5em}textarea,input{width:100%;box-sizing:border-box}
button{margin:.3em .3em 0 0;padding:.5em 1em}</style></head>
<body><h2>预警处置 / Alert <code>ALERT_ID</code></h2>
<label>访问令牌 / API token <input id="token" type="password" autocomplete="off"></label>
<pre id="alert">输入令牌后加载 / enter your token to load</pre>
<label>备注 / 处置说明 (note) <textarea id="note" rows="3"></textarea></label>
<button onclick="act('ack')">签收 Acknowledge</button><button onclick="act('notes')">反馈 Note</button>
<button onclick="act('close')">闭环 Close</button><p id="result"></p>
<script>
const id = "ALERT_ID", t = document.getElementById("token");
t.value = localStorage.getItem("rw-token") || "";
t.onchange = () => { localStorage.setItem("rw-token", t.value); load(); };
const h = () => ({"Authorization": "Bearer " + t.value, "Content-Type": "application/json"});
async function load() {
  const r = await fetch("/api/alerts/" + encodeURIComponent(id), {headers: h()});
  document.getElementById("alert").textContent = JSON.stringify(await r.json(), null, 1);
}
async function act(what) {
  const r = await fetch("/api/alerts/" + encodeURIComponent(id) + "/" + what,
    {method: "POST", headers: h(), body: JSON.stringify({note: document.getElementById("note").value})});
  const doc = await r.json();
  document.getElementById("result").textContent = r.ok ? "OK: " + doc.alert.state : r.status + ": " + doc.error;
  load();
}
if (t.value) load();
</script></body></html>
"""


ALERT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")  # alert ids are al-<transition id>


async def alert_page(request: web.Request) -> web.Response:
    alert_id = request.match_info["id"]
    # The id lands in HTML and in a JS string: only plain id characters are accepted (ids are al-<hex>).
    if not ALERT_ID.fullmatch(alert_id):
        return web.Response(status=400, text="not an alert id", content_type="text/plain")
    return web.Response(text=_PAGE.replace("ALERT_ID", alert_id), content_type="text/html", charset="utf-8")
