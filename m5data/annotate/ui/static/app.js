// The labelling page: vanilla JS, no framework. Product text is set with textContent only (never innerHTML):
// captions are untrusted HTML from web pages. URLs are relative: the server may serve the page under a random
// path (guard.py), and the token cookie is sent under that path only.
"use strict";
(function () {
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const worker = document.querySelector('meta[name="worker"]').content;
  let tasks = [];
  let current = 0;
  const cache = new Map();

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  async function product(id) {
    if (!cache.has(id)) {
      const res = await fetch("api/product/" + encodeURIComponent(id));
      cache.set(id, res.ok ? await res.json() : { product_id: id, title: "(unknown product)", specs: [] });
    }
    return cache.get(id);
  }

  function render(box, p) {
    box.replaceChildren();
    if (p.image) {
      const img = el("img");
      img.src = p.image;
      img.alt = "image of " + p.product_id;
      box.append(img);
    } else {
      box.append(el("div", "no image", "noimg"));
    }
    box.append(el("div", p.title, "title"));
    const price = p.price !== null && p.price !== undefined ? " · " + p.price + " " + (p.currency || "") : "";
    box.append(el("div", p.product_id + " · " + (p.category || "") + price, "meta"));
    if (p.specs && p.specs.length) {
      const table = el("table");
      for (const [k, v] of p.specs) {
        const tr = el("tr");
        tr.append(el("td", k), el("td", v));
        table.append(tr);
      }
      box.append(table);
    }
  }

  async function show(k) {
    if (!tasks.length) return;
    current = Math.max(0, Math.min(k, tasks.length - 1));
    const t = tasks[current];
    document.getElementById("position").textContent = (current + 1) + " / " + tasks.length;
    const [q, c] = await Promise.all([product(t.query_id), product(t.candidate_id)]);
    render(document.querySelector("#query .product"), q);
    render(document.querySelector("#candidate .product"), c);
    for (const b of document.querySelectorAll("button.label")) {
      b.classList.toggle("chosen", b.dataset.label === t.label);
    }
  }

  function progress(p) {
    document.getElementById("progress").textContent = "reviewed " + p.reviewed + " / " + p.total;
    if (p.reviewed === p.total && p.total > 0) {
      const done = document.getElementById("done");
      done.hidden = false;
      document.getElementById("done-text").textContent = p.gold_answered
        ? "Gold questions: " + p.gold_correct + " of " + p.gold_answered + " right (" + Math.round(100 * p.gold_accuracy) + "%)."
        : "No gold questions were answered.";
    }
  }

  async function judge(label) {
    const t = tasks[current];
    if (!t) return;
    const res = await fetch("api/judge", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify({ query_id: t.query_id, candidate_id: t.candidate_id, label: label }),
    });
    const status = document.getElementById("status");
    if (!res.ok) {
      status.textContent = "not saved: " + (await res.text());
      return;
    }
    t.label = label;
    status.textContent = "saved: " + label;
    progress(await res.json());
    await show(current + 1);
  }

  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const keys = { "1": "match", "2": "mismatch", "3": "uncertain" };
    if (keys[e.key]) { e.preventDefault(); judge(keys[e.key]); }
    else if (e.key === "ArrowRight") { e.preventDefault(); show(current + 1); }
    else if (e.key === "ArrowLeft") { e.preventDefault(); show(current - 1); }
  });
  for (const b of document.querySelectorAll("button.label")) b.addEventListener("click", () => judge(b.dataset.label));
  document.getElementById("next").addEventListener("click", () => show(current + 1));
  document.getElementById("prev").addEventListener("click", () => show(current - 1));

  async function start() {
    document.getElementById("worker").textContent = "worker: " + worker;
    const res = await fetch("api/tasks");
    tasks = (await res.json()).tasks;
    progress(await (await fetch("api/summary")).json());
    const first = tasks.findIndex((t) => !t.label);
    await show(first < 0 ? 0 : first);
  }
  start();
})();
