// Release Ledger console: the small amount of script every page shares.
// - times: each <time datetime> also shows the viewer's local time;
// - #countdown[data-until]: a live countdown to the ledger's re-evaluation;
// - button[data-load]: a fragment fetched when the button is pressed, replacing the element
//   named by data-target (the decision's replay check: it reads the log, so only on request);
// - the board (#live[data-events]): server-sent events with the tenant's log size; when it
//   grows, the counts and the rows are fetched again and replaced in place.

function localTimes(root) {
  for (const el of root.querySelectorAll('time[datetime]')) {
    if (el.dataset.localised) continue;
    const at = new Date(el.getAttribute('datetime'));
    if (Number.isNaN(at.getTime())) continue;
    el.dataset.localised = '1';
    el.title = el.getAttribute('datetime');
    const local = document.createElement('span');
    local.className = 'local';
    local.textContent = ' (' + at.toLocaleString() + ' your time)';
    el.after(local);
  }
}

function countdown() {
  const el = document.getElementById('countdown');
  if (!el) return;
  const until = new Date(el.dataset.until).getTime();
  const tick = () => {
    const left = Math.round((until - Date.now()) / 1000);
    if (Number.isNaN(left)) { el.textContent = ''; return; }
    if (left <= 0) { el.textContent = 'due now (reload to see the new decision)'; return; }
    const d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
    el.textContent = (d ? d + 'd ' : '') + String(h).padStart(2, '0') + ':' + String(m).padStart(2, '0') + ':' + String(s).padStart(2, '0') + ' left';
    setTimeout(tick, 1000);
  };
  tick();
}

function loadFragments() {
  for (const button of document.querySelectorAll('button[data-load]')) {
    button.addEventListener('click', async () => {
      const target = document.getElementById(button.dataset.target);
      button.disabled = true;
      button.textContent = 'Checking…';
      try {
        const answer = await fetch(button.dataset.load, { credentials: 'same-origin', headers: { 'x-fragment': '1' } });
        const doc = new DOMParser().parseFromString(await answer.text(), 'text/html');
        const fresh = doc.getElementById(button.dataset.target);
        if (answer.ok && fresh && target) { target.replaceWith(fresh); localTimes(fresh); return; }
        button.textContent = 'Check failed (HTTP ' + answer.status + '): try again';
      } catch (e) {
        button.textContent = 'Check failed (' + e + '): try again';
      }
      button.disabled = false;
    });
  }
}

function live() {
  const marker = document.getElementById('live');
  if (!marker || !window.EventSource) return;
  let size = Number(marker.dataset.size);
  let busy = false;
  const source = new EventSource(marker.dataset.events);
  source.addEventListener('head', async (event) => {
    const now = Number(event.data);
    if (now === size || busy) return;
    size = now;
    busy = true;
    try {
      const answer = await fetch(location.href, { credentials: 'same-origin' });
      if (answer.ok) {
        const doc = new DOMParser().parseFromString(await answer.text(), 'text/html');
        for (const id of ['counts', 'releases', 'empty', 'next-page']) {
          const old = document.getElementById(id), fresh = doc.getElementById(id);
          if (old && fresh) old.replaceWith(fresh);
        }
        const table = document.getElementById('releases');
        if (table) localTimes(table);
        marker.textContent = 'Updated ' + new Date().toLocaleTimeString() + ' (log size ' + now + ')';
      }
    } finally { busy = false; }
  });
}

localTimes(document);
countdown();
loadFragments();
live();
