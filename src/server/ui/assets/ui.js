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
  // Ages ("3m ago") change by themselves; only a real change is swapped in.
  function essence(html) { return html.replace(/<time([^>]*)>[^<]*<\/time>/g, '<time$1></time>'); }
  // Keeps keyboard focus on the same link across a swap.
  function focused() {
    var el = document.activeElement;
    if (!el || !main.contains(el) || !el.getAttribute('href')) return null;
    return el.getAttribute('href');
  }
  function refocus(href) {
    if (href === null) return;
    var links = main.querySelectorAll('a[href]');
    for (var i = 0; i < links.length; i++) {
      if (links[i].getAttribute('href') === href) { links[i].focus(); return; }
    }
  }
  function tick() {
    if (document.hidden) { schedule(); return; }
    fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.text();
      })
      .then(function (html) {
        failures = 0;
        // The first answer is swapped in quietly: the browser's own
        // serialisation of the page never equals the server's bytes.
        var first = last === null;
        if (essence(html) !== last) {
          last = essence(html);
          var href = focused();
          main.innerHTML = html;
          refocus(href);
          if (!first) say('Updated at ' + new Date().toLocaleTimeString());
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
