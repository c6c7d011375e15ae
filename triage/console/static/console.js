// triage console: live updates (server-sent events), countdowns, j/k navigation.
(function () {
  "use strict";
  var skew = 0;
  function syncClock() {
    var marks = document.querySelectorAll("[data-now-ms]");
    var last = marks[marks.length - 1];
    if (last) { skew = Number(last.getAttribute("data-now-ms")) - Date.now(); }
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function remaining(ms) {
    var late = ms < 0, s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var text = d ? d + " d " + h + " h" : h ? h + " h " + pad(m) + " min" : m ? m + " min " + pad(sec) + " s" : sec + " s";
    return late ? text + " late" : "in " + text;
  }
  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("[data-due-ms]").forEach(function (el) {
      el.textContent = remaining(Number(el.getAttribute("data-due-ms")) - now);
    });
  }
  function connect() {
    var status = document.getElementById("live-status");
    if (!status || !window.EventSource) { return; }
    var source = new EventSource("/events");
    source.addEventListener("open", function () { status.textContent = "live updates: on"; });
    source.addEventListener("error", function () { status.textContent = "live updates: reconnecting…"; });
    source.addEventListener("changed", function (e) {
      document.body.setAttribute("data-version", e.data);
      document.body.dispatchEvent(new CustomEvent("changed"));
    });
  }
  function caseLinks() { return Array.prototype.slice.call(document.querySelectorAll("a.case-link")); }
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") { return; }
    if (e.key !== "j" && e.key !== "k") { return; }
    var links = caseLinks(); if (!links.length) { return; }
    var i = links.indexOf(document.activeElement);
    i = e.key === "j" ? Math.min(i + 1, links.length - 1) : Math.max(i - 1, 0);
    links[i].focus(); e.preventDefault();
  });
  // A live refresh must not take the page from under someone's hands: while a field of
  // the refreshed part has focus the refresh waits (it runs when the field is left),
  // and after a refresh the focus goes back to the same control.
  var focusKey = null, pending = null;
  function keyOf(el) { return el && (el.id || el.getAttribute("data-focus-key")); }
  document.addEventListener("htmx:beforeRequest", function (e) {
    var active = document.activeElement, target = e.detail.target;
    if (active && target && target.contains(active) && /^(SELECT|INPUT|TEXTAREA)$/.test(active.tagName)) {
      e.preventDefault();
      pending = active;
      return;
    }
    focusKey = target && target.contains(active) ? keyOf(active) : null;
  });
  document.addEventListener("focusout", function (e) {
    if (pending && e.target === pending) {
      pending = null;
      setTimeout(function () { document.body.dispatchEvent(new CustomEvent("changed")); }, 0);
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    syncClock(); tick();
    if (focusKey) {
      var el = document.getElementById(focusKey) ||
        document.querySelector('[data-focus-key="' + focusKey.replace(/"/g, "") + '"]');
      if (el) { el.focus(); }
      focusKey = null;
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    syncClock(); tick(); setInterval(tick, 1000); connect();
  });
})();
