// Herald's dashboard: reads GET /v1/stats with the key given at sign-in (kept in sessionStorage only)
// and charts deliveries per channel and status over time, refreshing every REFRESH_MS.
(function () {
  'use strict';

  const REFRESH_MS = 10000;
  const RANGES = {
    hour: { bucket: 'minute', span: 60 * 60 * 1000, step: 60 * 1000 },
    day: { bucket: 'hour', span: 24 * 60 * 60 * 1000, step: 60 * 60 * 1000 },
    month: { bucket: 'day', span: 30 * 24 * 60 * 60 * 1000, step: 24 * 60 * 60 * 1000 }
  };
  const COLORS = {
    sent: '#2e7d32', delivered: '#1565c0', opened: '#6a1b9a', failed: '#c62828',
    expired: '#ef6c00', suppressed: '#9e9e9e', simulated: '#00838f'
  };
  const $ = (id) => document.getElementById(id);
  let chart = null;
  let timer = null;

  function credentials() {
    return { key: sessionStorage.getItem('herald.key'), app: sessionStorage.getItem('herald.app') || '' };
  }

  async function stats(range) {
    const { key, app } = credentials();
    const r = RANGES[range];
    const to = new Date();
    const from = new Date(to.getTime() - r.span);
    const query = new URLSearchParams({ bucket: r.bucket, from: from.toISOString(), to: to.toISOString() });
    if (app) {
      query.set('app', app);
    }
    const response = await fetch('/v1/stats?' + query, { headers: { Authorization: 'Bearer ' + key } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || body.title || ('HTTP ' + response.status));
      error.status = response.status;
      throw error;
    }
    return body;
  }

  /** Every bucket start in the range, so that quiet periods show as zero. */
  function bucketStarts(stats, range) {
    const r = RANGES[range];
    const starts = [];
    const first = new Date(stats.from);
    if (r.bucket === 'minute') first.setUTCSeconds(0, 0);
    if (r.bucket === 'hour') first.setUTCMinutes(0, 0, 0);
    if (r.bucket === 'day') first.setUTCHours(0, 0, 0, 0);
    for (let t = first.getTime(); t < new Date(stats.to).getTime(); t += r.step) {
      starts.push(new Date(t).toISOString().replace('.000Z', 'Z'));
    }
    return starts;
  }

  function label(iso, range) {
    const d = new Date(iso);
    if (range === 'month') return d.toISOString().slice(5, 10);
    return d.toISOString().slice(11, 16);
  }

  function draw(data, range) {
    const starts = bucketStarts(data, range);
    const index = new Map(starts.map((t, i) => [t, i]));
    const series = new Map();
    for (const b of data.buckets) {
      const name = b.channel + '/' + b.status;
      if (!series.has(name)) series.set(name, new Array(starts.length).fill(0));
      const i = index.get(new Date(b.t).toISOString().replace('.000Z', 'Z'));
      if (i !== undefined) series.get(name)[i] += b.count;
    }
    const datasets = [...series.entries()].sort().map(([name, counts]) => ({
      label: name,
      data: counts,
      stack: name.split('/')[0],
      backgroundColor: COLORS[name.split('/')[1]] || '#455a64'
    }));
    const labels = starts.map((t) => label(t, range));
    if (chart) {
      chart.data.labels = labels;
      chart.data.datasets = datasets;
      chart.update('none');
    } else {
      chart = new Chart($('deliveries-chart'), {
        type: 'bar',
        data: { labels, datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
          plugins: { legend: { position: 'bottom' } }
        }
      });
    }
  }

  function fill(tableId, rows) {
    const body = $(tableId).querySelector('tbody');
    body.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement('tr');
      cells.forEach((value, i) => {
        const td = document.createElement('td');
        td.textContent = String(value);
        if (i === cells.length - 1) td.className = 'count';
        tr.appendChild(td);
      });
      return tr;
    }));
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = $(tableId).querySelectorAll('th').length;
      td.className = 'muted';
      td.textContent = 'none in this range';
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  function summed(items, keyOf) {
    const sums = new Map();
    for (const item of items) {
      const k = keyOf(item);
      sums.set(k, (sums.get(k) || 0) + item.count);
    }
    return [...sums.entries()].sort((a, b) => b[1] - a[1]);
  }

  async function refresh() {
    const range = $('range').value;
    try {
      const data = await stats(range);
      $('who').textContent = 'App ' + data.app;
      draw(data, range);
      const totals = summed(data.buckets, (b) => b.channel + '\u0000' + b.status);
      fill('totals', totals.map(([k, n]) => [...k.split('\u0000'), n]));
      $('totals').querySelectorAll('tbody tr').forEach((tr) => {
        const cells = tr.querySelectorAll('td');
        if (cells.length === 3) tr.dataset.series = cells[0].textContent + '/' + cells[1].textContent;
      });
      fill('reasons', data.reasons.map((r) => [r.channel, r.status, r.reason, r.count]));
      fill('tokens', summed(data.tokensRemoved, (t) => t.status + '\u0000' + t.reason)
        .map(([k, n]) => [...k.split('\u0000'), n]));
      fill('calls', summed(data.calls, (c) => c.status + '\u0000' + c.reason)
        .map(([k, n]) => [...k.split('\u0000'), n]));
      $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
      $('board-error').textContent = '';
      document.body.dataset.loaded = 'true';
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        signOut(e.message);
      } else {
        $('board-error').textContent = 'Could not refresh: ' + e.message;
      }
    }
  }

  function show(signedIn) {
    $('login').hidden = signedIn;
    $('board').hidden = !signedIn;
    $('logout').hidden = !signedIn;
    clearInterval(timer);
    if (signedIn) {
      refresh();
      timer = setInterval(refresh, REFRESH_MS);
    }
  }

  function signOut(message) {
    sessionStorage.removeItem('herald.key');
    sessionStorage.removeItem('herald.app');
    $('who').textContent = '';
    $('login-error').textContent = message || '';
    show(false);
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      sessionStorage.setItem('herald.key', $('key').value.trim());
      sessionStorage.setItem('herald.app', $('app').value.trim());
      $('key').value = '';
      $('login-error').textContent = '';
      show(true);
    });
    $('logout').addEventListener('click', () => signOut());
    $('range').addEventListener('change', refresh);
    show(Boolean(credentials().key));
  });
})();
