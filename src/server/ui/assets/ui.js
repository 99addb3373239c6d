// Keeps a page live: polls its fragment URL (data-live on <main>) and swaps
// in the server-rendered, already escaped HTML when it changed. Without this
// script every page is complete; it only saves a reload.
(function () {
  'use strict';
  var main = document.getElementById('main');
  var status = document.getElementById('live-status');
  if (!main || !main.dataset.live || !window.fetch) return;
  var url = main.dataset.live;
  var last = null;
  var failures = 0;
  function say(text) { if (status) status.textContent = text; }
  function tick() {
    if (document.hidden) { schedule(); return; }
    fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.text();
      })
      .then(function (html) {
        failures = 0;
        if (last === null) last = main.innerHTML;
        if (html !== last) {
          last = html;
          main.innerHTML = html;
          say('Updated at ' + new Date().toLocaleTimeString());
        }
        main.dataset.liveState = 'ok';
      })
      .catch(function () {
        failures += 1;
        main.dataset.liveState = 'error';
        if (failures === 3) say('Live updates paused: the server does not answer. Reload to retry.');
      })
      .then(schedule);
  }
  function schedule() { setTimeout(tick, failures >= 3 ? 15000 : 2000); }
  say('Live: this page follows changes as they happen.');
  schedule();
})();
