// mailhost admin: a little progressive enhancement over server-rendered
// forms. Every page works without this file; it adds live status updates
// and confirmations. No framework, no build step.
"use strict";

(function () {
  // Live connection status: fetch the status page again and take its
  // account rows (one renderer, escaped on the server; no JSON endpoint).
  var table = document.getElementById("account-status");
  if (table) {
    var live = document.getElementById("status-live");
    var refresh = function () {
      fetch("/admin/status", { credentials: "same-origin", redirect: "error" })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var rows = doc.querySelector("#account-status tbody");
          var kill = doc.getElementById("kill-state");
          if (!rows) { throw new Error("no status in the answer"); }
          // Keep the focused Refresh button: replace only the cells that change.
          rows.querySelectorAll("tr[data-account]").forEach(function (fresh) {
            var row = table.querySelector('tr[data-account="' + CSS.escape(fresh.getAttribute("data-account")) + '"]');
            if (!row) { return; }
            ["state", "reason", "since"].forEach(function (c) {
              var a = row.querySelector("." + c);
              var b = fresh.querySelector("." + c);
              if (a && b) { a.textContent = b.textContent; a.className = b.className; }
            });
          });
          // Batch progress: the whole table (it has no focusable controls).
          var batches = document.getElementById("batch-status");
          var freshBatches = doc.getElementById("batch-status");
          if (batches && freshBatches) { batches.replaceWith(freshBatches); }
          var k = document.getElementById("kill-state");
          if (k && kill) { k.textContent = kill.textContent; }
          if (live) { live.textContent = "updated " + new Date().toLocaleTimeString(); }
        })
        .catch(function (e) { if (live) { live.textContent = "live update failed: " + e.message; } });
    };
    setInterval(refresh, 2000);
  }

  // Forms that need a confirmation (the kill switch, cancel).
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      var box = f.querySelector("input[name=confirm]");
      if (box && box.checked) { return; }
      if (!window.confirm(f.getAttribute("data-confirm"))) { ev.preventDefault(); }
      else if (box) { box.checked = true; }
    });
  });
})();
