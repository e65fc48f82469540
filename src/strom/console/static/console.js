// strom console: refresh the parts of a page marked data-live every few seconds while the page is visible.
// Plain script, no build step. A failed refresh leaves the page as it was and tries again later.
"use strict";
(function () {
  // Pages answering a form post have a POST address: there is nothing to fetch again there.
  if (document.body.dataset.refresh !== "on") return;
  const sections = document.querySelectorAll("[data-live][id]");
  if (sections.length === 0) return;
  const intervalMs = 5000;
  async function refresh() {
    if (document.hidden) return;
    let text;
    try {
      const answer = await fetch(window.location.href, { headers: { "X-Live": "1" } });
      if (!answer.ok) return;
      text = await answer.text();
    } catch (_) {
      return;
    }
    const fresh = new DOMParser().parseFromString(text, "text/html");
    for (const section of sections) {
      const update = fresh.getElementById(section.id);
      if (update) section.innerHTML = update.innerHTML;
    }
  }
  window.setInterval(refresh, intervalMs);
  window.stromRefresh = refresh; // lets a test (or a bookmarklet) refresh at once instead of waiting
})();
