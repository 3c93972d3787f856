//! The console's stylesheet and script, served from the binary (no build step, no CDN; the
//! Content-Security-Policy allows nothing else). The script only adds to pages that work
//! without it: the live channel table (server-sent events, cells set with `textContent`, never
//! as HTML) and reading a chosen file into the "try it" box.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const CSS: &str = r#"
:root { --fg: #1b1b1f; --bg: #fafafa; --muted: #5c5c66; --line: #d6d6de; --accent: #4b2bbd;
        --bad: #a4161a; --ok: #1d6b36; font-family: system-ui, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg); line-height: 1.45; }
header { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; padding: .6rem 1rem;
         background: #fff; border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; }
header nav { flex: 1; }
.who { color: var(--muted); }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
a { color: var(--accent); }
.skip { position: absolute; left: -999px; }
.skip:focus { left: .5rem; top: .5rem; background: #fff; padding: .4rem; z-index: 2; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; margin: .8rem 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 1rem; }
.field { margin: .5rem 0; display: flex; flex-direction: column; gap: .2rem; }
label { font-weight: 600; }
input, select, textarea, button { font: inherit; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 4px; }
textarea { width: 100%; font-family: ui-monospace, monospace; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
button.danger { background: #fff; color: var(--bad); border-color: var(--bad); }
form.inline { display: inline; }
.inline-form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background: #fff; }
caption { text-align: left; color: var(--muted); padding: .3rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .35rem .5rem; text-align: left; vertical-align: top; }
td.actions { white-space: nowrap; }
.state-failed { color: var(--bad); font-weight: 700; }
.state-running { color: var(--ok); }
.flash { background: #eef6ee; border: 1px solid #b9dcbf; padding: .5rem .8rem; border-radius: 4px; }
.error, .field-error { color: var(--bad); white-space: pre-wrap; font-family: ui-monospace, monospace; margin: .2rem 0; }
.items { list-style: none; padding: 0; }
.item { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5rem .8rem; margin: .4rem 0; }
.item-head { display: flex; flex-wrap: wrap; gap: .5rem; align-items: baseline; }
.summary { color: var(--muted); overflow-wrap: anywhere; }
.badge { font-size: .8rem; border: 1px solid var(--muted); border-radius: 3px; padding: 0 .3rem; }
.item-actions { margin: .3rem 0; display: flex; gap: .4rem; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
.hint { color: var(--muted); }
@media (max-width: 40rem) { main { padding: .5rem; } th, td { padding: .3rem; } }
"#;

const JS: &str = r#"
"use strict";
(function () {
  function liveChannels() {
    var table = document.getElementById("channels");
    if (!table || !window.EventSource) { return; }
    var body = table.tBodies[0];
    var source = new EventSource(table.getAttribute("data-events"));
    source.addEventListener("channels", function (event) {
      var rows;
      try { rows = JSON.parse(event.data); } catch (e) { return; }
      var seen = {};
      rows.forEach(function (r) {
        seen[r.id] = true;
        var tr = null;
        for (var i = 0; i < body.rows.length; i++) {
          if (body.rows[i].getAttribute("data-channel") === r.id) { tr = body.rows[i]; break; }
        }
        if (!tr) { tr = newRow(body, r); }
        set(tr, "state", r.state);
        var state = tr.querySelector('[data-field="state"]');
        if (state) { state.className = "state-" + r.state; }
        set(tr, "joined", r.joined ? "yes" : "no");
        set(tr, "rate", r.rate === null ? "\u2013" : r.rate.toFixed(1));
        set(tr, "processed", String(r.processed));
        set(tr, "shed", String(r.shed));
        set(tr, "restarts", String(r.restarts));
        set(tr, "last_error", r.last_error);
      });
      for (var j = 0; j < body.rows.length; j++) {
        var id = body.rows[j].getAttribute("data-channel");
        if (id && !seen[id]) { set(body.rows[j], "state", "not listed (parted, or no longer among the busiest)"); }
      }
    });
  }
  function set(tr, field, text) {
    var cell = tr.querySelector('[data-field="' + field + '"]');
    if (cell && cell.textContent !== text) { cell.textContent = text; }
  }
  function newRow(body, r) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-channel", r.id);
    var th = document.createElement("th");
    th.setAttribute("scope", "row");
    var a = document.createElement("a");
    a.setAttribute("href", "/ui/channels/" + encodeURIComponent(r.platform) + "/" + encodeURIComponent(r.channel));
    a.textContent = r.channel;
    th.appendChild(a);
    tr.appendChild(th);
    var platform = document.createElement("td");
    platform.textContent = r.platform;
    tr.appendChild(platform);
    ["state", "joined", "rate", "processed", "shed", "restarts", "last_error"].forEach(function (f) {
      var td = document.createElement("td");
      td.setAttribute("data-field", f);
      tr.appendChild(td);
    });
    tr.appendChild(document.createElement("td"));
    body.appendChild(tr);
    return tr;
  }
  function filePickers() {
    var pickers = document.querySelectorAll("input[type=file][data-fills]");
    Array.prototype.forEach.call(pickers, function (input) {
      input.addEventListener("change", function () {
        var target = document.getElementById(input.getAttribute("data-fills"));
        var file = input.files && input.files[0];
        if (!target || !file) { return; }
        var max = Number(input.getAttribute("data-max-bytes")) || 1048576;
        if (file.size > max) { target.value = ""; alert("That file is over " + max + " bytes."); return; }
        var reader = new FileReader();
        reader.onload = function () { target.value = String(reader.result); };
        reader.readAsText(file);
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { liveChannels(); filePickers(); });
})();
"#;

/// `GET /ui/assets/console.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

/// `GET /ui/assets/console.js`.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        JS,
    )
        .into_response()
}
