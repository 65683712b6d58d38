// gatehouse console: the little JavaScript the pages use. Everything works
// without it except the live event stream.
"use strict";

document.addEventListener("submit", function (e) {
  var form = e.target;
  var ask = form.getAttribute("data-confirm");
  if (ask && !window.confirm(ask)) { e.preventDefault(); return; }
  var wait = form.getAttribute("data-wait");
  if (wait) {
    var box = document.getElementById(wait);
    if (box) { box.classList.add("on"); }
    form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
  }
});

document.addEventListener("click", function (e) {
  if (e.target.closest("[data-print]")) { window.print(); }
});

(function live() {
  var rows = document.getElementById("live-rows");
  if (!rows || !window.EventSource) { return; }
  var dot = document.getElementById("live-dot");
  var max = 200;
  var source = new EventSource(rows.getAttribute("data-stream"));
  source.onopen = function () { if (dot) { dot.classList.add("on"); } };
  source.onerror = function () { if (dot) { dot.classList.remove("on"); } };
  source.addEventListener("event", function (msg) {
    var tmp = document.createElement("tbody");
    tmp.innerHTML = msg.data;
    var row = tmp.firstElementChild;
    if (!row) { return; }
    row.classList.add("fresh");
    rows.insertBefore(row, rows.firstChild);
    while (rows.children.length > max) { rows.removeChild(rows.lastChild); }
    var empty = document.getElementById("live-empty");
    if (empty) { empty.remove(); }
  });
})();
