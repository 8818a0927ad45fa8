// wasmq dashboard: the little script it has. Pages work without it, except the live
// refresh and the module upload.
"use strict";

// A region marked data-live="URL" is re-fetched while the tab is visible and replaced
// when it changed; it stops once the fragment carries data-final (a finished job).
// An answer that is a redirect (the session ended) reloads the page: to sign-in.
function live(region) {
  const url = region.dataset.live;
  let last = region.innerHTML;
  const every = 2000;
  async function tick() {
    if (!document.hidden) {
      try {
        const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (r.redirected) { location.reload(); return; }
        if (r.ok) {
          const html = await r.text();
          if (html !== last) {
            region.innerHTML = html;
            last = html;
          }
        }
      } catch (_) { /* offline for a moment: try again next tick */ }
    }
    if (!region.querySelector("[data-final]")) setTimeout(tick, every);
  }
  if (!region.querySelector("[data-final]")) setTimeout(tick, every);
}

// The upload form sends the file's bytes as the body, like `PUT /v1/modules/{name}`,
// with the limits as query parameters and the session's CSRF token in a header.
function upload(form) {
  const status = form.querySelector("#upload-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = form.elements.name.value.trim();
    const file = form.elements.file.files[0];
    if (!name || !file) return;
    const query = new URLSearchParams();
    for (const limit of ["fuel", "timeout_ms", "memory_bytes", "output_bytes", "log_bytes"]) {
      const value = form.elements[limit].value.trim();
      if (value) query.set(limit, value);
    }
    status.textContent = "Uploading and compiling " + file.name + "…";
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const r = await fetch("/ui/modules/" + encodeURIComponent(name) + "/upload?" + query, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/wasm", "x-csrf": form.dataset.csrf },
        body: file,
      });
      if (r.ok) {
        status.textContent = await r.text();
        location.assign("/ui/modules/" + encodeURIComponent(name));
        return;
      }
      // An error page: show its message here.
      const page = new DOMParser().parseFromString(await r.text(), "text/html");
      const detail = page.querySelector(".detail");
      status.textContent = "Refused: " + (detail ? detail.textContent : r.status + " " + r.statusText);
    } catch (e) {
      status.textContent = "The upload failed: " + e;
    }
    button.disabled = false;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(live);
  const form = document.getElementById("upload");
  if (form) upload(form);
});
