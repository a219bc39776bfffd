// tunesmith dashboard: fills each <section class="kind" data-src=...> with the plots its JSON
// endpoint returns, then (on a study page) polls the study's "changes since" endpoint and redraws
// in place when the study changed: plots, summary lines, trials table. No page reload, no request
// beyond this server. Plots below the first screen are fetched and drawn when scrolled near or past
// (body[data-ready]: the first screen is drawn; body[data-all]: every plot is).
(function () {
  "use strict";
  const FAST = ["history", "curves", "process"];  // redrawn at every change; the others every 10 s at most
  const GATEWAY = [502, 503, 504];  // a reverse proxy's answers while the server is away (it never gives them)
  const RETRY = 2000;  // ms: how often a static page (no poll) asks again for the plots it could not load
  const STATIC = (sec) => sec.closest("[data-static]") !== null;

  function show(sec, i, p, version) {
    const id = "plot-" + sec.dataset.kind + "-" + i;
    let div = document.getElementById(id);
    if (!div) {
      div = document.createElement("div");
      div.id = id;
      sec.appendChild(div);
    }
    div.dataset.version = version;
    if (typeof p.message === "string") {  // nothing to draw: its reason, an empty one too (not an empty figure)
      if (div.classList.contains("plot")) { Plotly.purge(div); }
      div.style.minWidth = "";  // a process diagram's width (tunesmithFitWidth): a note takes the page's
      div.className = "note empty";
      div.textContent = p.title + ": " + (p.message || "nothing to draw");
      return;
    }
    div.className = "plot";
    const t0 = performance.now();
    // a process diagram's column on a narrow page, drawn at once (served before this file)
    Plotly.react(div, p.figure.data, tunesmithLayout(div, p.figure.layout), {responsive: true});
    tunesmithFitTitles(div);  // the title cut into lines as wide as the plot is drawn (served before this file)
    window.drawTimes = window.drawTimes || {};
    window.drawTimes[id] = Math.round(performance.now() - t0);  // ms, for benchmarks
    let note = document.getElementById(id + "-note");
    if (p.note && !note) {
      note = document.createElement("p");
      note.id = id + "-note";
      note.className = "note";
      div.after(note);
    }
    if (note) { note.textContent = p.note || ""; }
  }

  // an answer of the server's; a reverse proxy's "cannot reach it" (502-504) is thrown as fetch's own failure is
  function reached(r) {
    if (GATEWAY.includes(r.status)) { throw new Error("a proxy cannot reach the server: " + r.status); }
    return r;
  }

  // what an error answer says: its JSON "error", else its text as it is (shown as text, never as markup)
  async function reason(r) {
    const body = await r.text();
    try { return JSON.parse(body).error || body; } catch (err) { return body; }
  }

  // a note written in place of the section's plots, cleared when they come
  function noted(sec, text) {
    sec.textContent = "could not load " + sec.dataset.kind + ": " + text;
    sec.dataset.noted = "1";
  }

  async function load(sec) {
    let r, body;
    try {
      r = reached(await fetch(sec.dataset.src));
      body = r.ok ? await r.json() : await reason(r);
    } catch (err) {  // the server cannot be reached now: a study page's poll loads it again, a static page's retry
      sec.dataset.failed = "1";
      if (STATIC(sec)) { noted(sec, "cannot reach the dashboard server; retrying"); retryLater(); }
      return;
    }
    if (sec.dataset.noted) { sec.textContent = ""; delete sec.dataset.noted; }
    delete sec.dataset.failed;
    sec.dataset.answered = "1";
    if (!r.ok) {  // a storage error (500) may pass: asked for again as an unreachable server's plots are
      if (r.status === 500) { sec.dataset.failed = "1"; }
      noted(sec, body + (r.status === 500 ? "; retrying" : ""));
      if (r.status === 500 && STATIC(sec)) { retryLater(); }
      return;
    }
    body.plots.forEach((p, i) => show(sec, i, p, body.version));
    sec.dataset.version = body.version;
    sec.style.minHeight = "0";
  }

  let retrying = null;  // a static page's timer, set while some plot could not be loaded

  function retryLater() {
    if (retrying) { return; }
    retrying = setTimeout(async () => {
      const sections = Array.from(document.querySelectorAll("#plots section.kind"));
      await Promise.all(sections.filter((s) => s.dataset.failed).map(load));
      markAll(sections);
      retrying = null;
      if (sections.some((s) => s.dataset.failed)) { retryLater(); }
    }, RETRY);
  }

  function markAll(sections) {
    if (sections.every((s) => s.dataset.answered)) { document.body.dataset.all = "1"; }
  }

  function near(sec) {
    return sec.getBoundingClientRect().top < window.innerHeight + 300;
  }

  // draw the sections of the first screen now, the others as they come near the viewport or once
  // scrolled past: one jump (the End key, a link further down) passes sections that never came into
  // view, which the observer alone reported to nobody
  async function drawAll(sections) {
    const first = sections.filter(near);
    await Promise.all(first.map(load));
    document.body.dataset.ready = "1";
    markAll(sections);
    const waiting = new Set(sections.filter((s) => !first.includes(s)));
    let queued = false;
    const reach = () => {
      for (const s of waiting) {
        if (!near(s)) { continue; }  // near() holds for a section above the viewport too
        waiting.delete(s);
        seen.unobserve(s);
        load(s).then(() => markAll(sections));
      }
      if (!waiting.size) { window.removeEventListener("scroll", scrolled); }
    };
    const scrolled = () => {  // at most once a frame
      if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; reach(); }); }
    };
    const seen = new IntersectionObserver(reach, {rootMargin: "300px"});
    waiting.forEach((s) => seen.observe(s));
    window.addEventListener("scroll", scrolled, {passive: true});
  }

  // the summary lines and the trials table, rendered by the server as on the page's first load
  function update(html) {
    for (const [id, text] of Object.entries(html)) {
      const el = document.getElementById(id);
      if (el) { el.innerHTML = text; }
    }
  }

  async function main() {
    const plots = document.getElementById("plots");
    if (!plots) { return; }
    const sections = Array.from(plots.querySelectorAll("section.kind"));
    await drawAll(sections);
    if (plots.dataset.static) { return; }  // no poll: load asks again for the plots it could not load
    const name = plots.dataset.study;
    const every = 1000 * parseFloat(plots.dataset.poll || "2");
    const live = document.getElementById("live");
    let version = plots.dataset.version;
    let slowAt = Date.now();
    let behind = false;  // a change the slower plots have not drawn yet (they wait out their 10 s)
    async function poll() {
      try {
        const query = new URLSearchParams(window.location.search);  // the table's page, order, state
        query.set("since", version);
        const r = reached(await fetch("/api/studies/" + encodeURIComponent(name) + "/changes?" + query.toString()));
        if (r.status === 404) {  // gone for good: polling stops
          live.innerHTML = "this study is no longer in the storage (deleted or renamed): <a href='/'>all studies</a>";
          return;
        }
        if (!r.ok) {  // the server answered with an error (500: the storage could not be read); polling goes on
          const why = await reason(r);
          live.textContent = "live: " + (r.status === 500 ? "the dashboard could not read the storage: "
            : "the dashboard answered " + r.status + ": ") + why + "; retrying";
          setTimeout(poll, every);
          return;
        }
        const c = await r.json();
        if (c.changed) {
          version = c.version;
          update(c.html);
          behind = true;
        }
        const slow = behind && Date.now() - slowAt > 10000;
        if (c.changed || slow) {
          const drawn = sections.filter((s) => s.dataset.version !== undefined);
          await Promise.all(drawn.filter((s) => slow || FAST.includes(s.dataset.kind)).map(load));
          if (slow) { slowAt = Date.now(); behind = false; }
        }
        await Promise.all(sections.filter((s) => s.dataset.failed).map(load));  // asked while unreachable
        markAll(sections);
        // HH:MM:SS, local and 24-hour whatever the browser's locale, as the page's times are written
        live.textContent = "live: checked " + new Date().toTimeString().slice(0, 8);
      } catch (err) {
        live.textContent = "cannot reach the dashboard server; retrying";
      }
      setTimeout(poll, every);
    }
    setTimeout(poll, every);
  }

  document.addEventListener("DOMContentLoaded", main);
})();
