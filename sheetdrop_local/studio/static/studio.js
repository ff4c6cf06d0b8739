// The live part of a page (#live, data-refresh = seconds, 0 = still) is fetched again and swapped in
// place: the run list moves on while runs are in progress, without a reload losing the scroll position.
(function () {
  "use strict";
  function schedule(live) {
    const every = Number(live.dataset.refresh || 0);
    if (!every) return;
    setTimeout(async function () {
      try {
        // Marked as a refresh: the studio may answer it from storage's notes as last read (unrun.py).
        const answer = await fetch(window.location.href, { cache: "no-store", headers: { "X-Studio-Refresh": "1" } });
        if (answer.ok) {
          const page = new DOMParser().parseFromString(await answer.text(), "text/html");
          const fresh = page.getElementById("live");
          if (fresh) {
            live.innerHTML = fresh.innerHTML;
            live.dataset.refresh = fresh.dataset.refresh || "0";
          }
        }
      } catch (error) {
        // The studio stopped for a moment (the host restarting): try again at the next tick.
      }
      schedule(live);
    }, every * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const live = document.getElementById("live");
    if (live) schedule(live);
    // A filter's choice applies at once (an inline handler would be refused by the page's CSP).
    document.querySelectorAll("select[data-submit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    document.querySelectorAll("button.copy").forEach(function (button) {
      button.addEventListener("click", function () {
        const text = document.getElementById(button.dataset.copy).textContent;
        navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
      });
    });
  });
})();
