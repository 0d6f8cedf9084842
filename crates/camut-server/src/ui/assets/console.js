// Camut console: refreshes the live parts of a page, reads uploaded campaign files,
// asks before destructive posts. Plain JavaScript, nothing fetched from elsewhere.
"use strict";

// Elements with data-refresh="URL" are replaced by that URL's HTML every data-every ms.
function follow(el) {
  const every = parseInt(el.dataset.every || "1000", 10);
  const tick = async () => {
    try {
      const res = await fetch(el.dataset.refresh, { headers: { "x-camut-fragment": "1" } });
      if (res.status === 401) {
        location.reload(); // signed out: show the sign-in page
        return;
      }
      if (res.ok) {
        const html = await res.text();
        const open = new Set([...el.querySelectorAll("details[open]")].map((d) => d.closest("tr") && d.closest("tr").id));
        const atBottom = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
        el.innerHTML = html;
        el.querySelectorAll("details").forEach((d) => {
          const row = d.closest("tr");
          if (row && open.has(row.id)) d.open = true;
        });
        if (el.hasAttribute("data-follow") && atBottom) el.scrollTop = el.scrollHeight;
        el.dataset.refreshed = String(parseInt(el.dataset.refreshed || "0", 10) + 1);
      }
    } catch (e) {
      // server restarting: try again at the next tick
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(follow);
  document.querySelectorAll("[data-follow]").forEach((el) => { el.scrollTop = el.scrollHeight; });

  // Reading an uploaded file into the form's text area.
  const upload = document.getElementById("upload");
  if (upload) {
    upload.addEventListener("change", () => {
      const file = upload.files && upload.files[0];
      if (!file) return;
      const reader = new FileReader();
      reader.onload = () => {
        document.getElementById("source").value = reader.result;
        document.getElementById("file-name").value = file.name;
        upload.dataset.loaded = file.name;
      };
      reader.readAsText(file);
    });
  }

  // Filters that apply at once.
  document.querySelectorAll("select[data-autosubmit]").forEach((s) => {
    s.addEventListener("change", () => s.form.submit());
  });
});

// Posts that destroy something ask first (forms may be re-rendered by a refresh).
document.addEventListener("submit", (ev) => {
  const form = ev.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) ev.preventDefault();
});
