"""The live view's page: one self-contained HTML file (inline CSS and JavaScript, nothing fetched from
elsewhere, so it works on a network without internet access).

What it does: asks ``/stats`` once a second and builds a tile per stream (its MJPEG ``/stream/<i>``, its
numbers beside it, a snapshot button that downloads ``/snapshot/<i>.png``); a stream that breaks off is
asked again every second; a new run (another ``run`` id in ``/stats``) rebuilds the tiles. Stream names
are put in with ``textContent``, never as HTML (a file or URL name is not trusted). The streams start
after the page's load event: an endless MJPEG would otherwise keep the page "loading" for ever.
"""

from __future__ import annotations

PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>hhrt live view</title>
<style>
  :root { color-scheme: dark; --bg: #111418; --panel: #1b2027; --text: #e6e9ee; --dim: #8a94a3; --accent: #4fc3f7; }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.4 system-ui, sans-serif; }
  header { display: flex; align-items: baseline; gap: 1em; padding: 10px 16px; }
  header h1 { font-size: 16px; margin: 0; }
  #status { color: var(--dim); }
  #status.bad { color: #ff8a65; }
  #tiles { display: grid; gap: 12px; padding: 0 16px 16px;
           grid-template-columns: repeat(auto-fit, minmax(min(100%, 560px), 1fr)); }
  .tile { background: var(--panel); border-radius: 8px; padding: 10px; display: flex; gap: 10px; }
  .picture { flex: 1; min-width: 0; }
  .picture img { width: 100%; display: block; border-radius: 4px; background: #000; min-height: 60px; }
  .side { width: 150px; flex: none; display: flex; flex-direction: column; gap: 8px; }
  .side h2 { font-size: 14px; margin: 0; overflow-wrap: anywhere; }
  dl { margin: 0; display: grid; grid-template-columns: auto 1fr; gap: 2px 8px; }
  dt { color: var(--dim); }
  dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
  .state { font-size: 12px; color: var(--dim); }
  button { background: var(--accent); color: #06202c; border: 0; border-radius: 4px; padding: 6px 8px;
           font-weight: 600; cursor: pointer; }
  button:disabled { opacity: .5; cursor: default; }
</style>
</head>
<body>
<header><h1>hhrt live view</h1><span id="status">connecting...</span></header>
<main id="tiles"></main>
<script>
"use strict";
const FIELDS = [["fps", "FPS", v => v.toFixed(1)], ["latency_ms", "latency", v => v.toFixed(0) + " ms"],
                ["people", "people", String], ["frames", "frames", String], ["dropped", "drops", String],
                ["skipped", "skipped", String], ["reconnects", "reconnects", String]];
let run = null, tiles = [], started = false;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  children.forEach(c => node.append(c));
  return node;
}

function startStream(img, i) {
  img.onerror = () => setTimeout(() => startStream(img, i), 1000);  // the stream broke off: ask again
  img.src = "/stream/" + i + "?t=" + Date.now();
}

function build(stats) {
  const main = document.getElementById("tiles");
  main.replaceChildren();
  tiles = stats.streams.map((s, i) => {
    const img = el("img", {className: "stream", alt: "stream " + i});
    img.dataset.stream = String(i);
    const values = {};
    const dl = el("dl");
    FIELDS.forEach(([key, label]) => { values[key] = el("dd", {className: key}); dl.append(el("dt", {textContent: label}), values[key]); });
    const button = el("button", {type: "button", textContent: "Snapshot", className: "snapshot"});
    button.onclick = () => snapshot(i, button);
    const title = el("h2", {textContent: s.name});
    const state = el("div", {className: "state"});
    main.append(el("section", {className: "tile"}, el("div", {className: "picture"}, img),
                   el("div", {className: "side"}, title, state, dl, button)));
    if (started) startStream(img, i);
    return {img, values, state, name: s.name};
  });
}

function show(stats) {
  stats.streams.forEach((s, i) => {
    const tile = tiles[i];
    if (!tile) return;
    FIELDS.forEach(([key, , format]) => { tile.values[key].textContent = format(s[key]); });
    tile.state.textContent = s.state + (s.viewers > 1 ? " \\u00b7 " + s.viewers + " viewers" : "");
  });
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const reply = await fetch("/stats", {cache: "no-store"});
    if (!reply.ok) throw new Error("HTTP " + reply.status);
    const stats = await reply.json();
    if (stats.run !== run || stats.streams.length !== tiles.length) { run = stats.run; build(stats); }
    show(stats);
    status.textContent = "live \\u00b7 at most " + stats.view_fps + " frames/s per stream";
    status.className = "";
  } catch (err) {
    status.textContent = "the run is not answering (it may have ended); trying again...";
    status.className = "bad";
  }
}

async function snapshot(i, button) {
  button.disabled = true;
  try {
    const reply = await fetch("/snapshot/" + i + ".png", {cache: "no-store"});
    if (!reply.ok) throw new Error(await reply.text());
    const blob = await reply.blob();
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const name = (tiles[i] ? tiles[i].name : "stream").replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 60);
    const link = el("a", {href: URL.createObjectURL(blob), download: "hhrt-" + name + "-" + stamp + ".png"});
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  } catch (err) {
    document.getElementById("status").textContent = "snapshot failed: " + err.message;
  } finally {
    button.disabled = false;
  }
}

window.addEventListener("load", () => {
  started = true;
  tiles.forEach((tile, i) => startStream(tile.img, i));
});
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"""
