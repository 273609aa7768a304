// Staff pages, loaded only when an admin opens them: Items (create, edit price and stock, remove) and
// Reports (a window, a grouping, the chart, the CSV, the queue of report jobs).
import { h, replace, field, rupiah, dateTime, say, busy, uid, statusView } from './dom.js';
import { api, explain, amount } from './api.js';
import { everyCategory, forgetCategories } from './shop.js';

// -- Items ---------------------------------------------------------------------------------------------

const whole = (text) => (/^\d+$/.test(text.replace(/[.\s]/g, '')) ? Number(text.replace(/[.\s]/g, '')) : NaN);

export function items(root) {
  const region = h('div', { class: 'notes' });
  const sku = field('SKU', { required: true, maxlength: '64', autocapitalize: 'characters' });
  const name = field('Name', { required: true, maxlength: '200' });
  const price = field('Price (Rp)', { required: true, inputmode: 'numeric' }, 'Whole rupiah, e.g. 75000.');
  const stock = field('Stock', { required: true, type: 'number', min: '0', step: '1', inputmode: 'numeric' });
  const category = field('Category', { tag: 'select', options: [['', 'No category']] });
  const description = field('Description (optional)', { tag: 'textarea', rows: '2', maxlength: '10000' });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create item');
  const body = h('tbody');
  const listNote = h('div', { class: 'notes' });
  const find = field('Find items', { type: 'search', placeholder: 'Part of a name' });
  const next = h('button', { type: 'button', onclick: () => load(cursor) }, 'Next');
  const first = h('button', { type: 'button', onclick: () => load(null) }, 'First page');
  let cursor = null;

  const shelves = categoriesPanel((rows) => {
    const chosen = category.control.value;
    replace(category.control, h('option', { value: '' }, 'No category'), rows.map((c) => h('option', { value: String(c.id) }, c.name)));
    category.control.value = rows.some((c) => String(c.id) === chosen) ? chosen : '';
  });

  async function submit(event) {
    event.preventDefault();
    const values = { price: whole(price.control.value), stock: Number(stock.control.value) };
    if (!Number.isSafeInteger(values.price)) { say(region, 'Price: type whole rupiah, digits only.', 'error'); price.control.focus(); return; }
    busy(create, true);
    try {
      const { data } = await api('POST', '/v1/items', {
        body: {
          sku: sku.control.value.trim(), name: name.control.value.trim(), ...values,
          category_id: category.control.value ? Number(category.control.value) : null, description: description.control.value,
        },
      });
      say(region, `Created ${data.name} (${data.sku}) at ${rupiah(data.price)}, ${data.stock} in stock.`);
      event.target.reset();
      body.prepend(row({ ...data, price: { amount: data.price } }, true));
    } catch (error) {
      say(region, explain(error), 'error');
    } finally {
      busy(create, false);
    }
  }

  function row(item, fresh = false) {
    const priceId = uid('price');
    const stockId = uid('stock');
    const priceInput = h('input', { id: priceId, inputmode: 'numeric', value: String(amount(item.price)), size: '10' });
    const stockInput = h('input', { id: stockId, type: 'number', min: '0', step: '1', value: String(item.stock), class: 'qty' });
    const save = h('button', { type: 'button', onclick: async () => {
      const changes = { price: whole(priceInput.value), stock: Number(stockInput.value) };
      if (!Number.isSafeInteger(changes.price) || !Number.isInteger(changes.stock) || changes.stock < 0) {
        say(listNote, `${item.name}: price and stock must be whole numbers, 0 or more.`, 'error');
        return;
      }
      busy(save, true);
      try {
        const { data } = await api('PATCH', `/v1/items/${item.id}`, { body: changes });
        say(listNote, `Saved ${data.name}: ${rupiah(data.price)}, ${data.stock} in stock.`);
      } catch (error) {
        say(listNote, `${item.name}: ${explain(error)}`, 'error');
      } finally {
        busy(save, false);
      }
    } }, 'Save');
    const remove = h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!window.confirm(`Remove ${item.name} (${item.sku}) from the catalogue? Shoppers will no longer see it; past purchases keep it.`)) return;
      busy(remove, true);
      try {
        await api('DELETE', `/v1/items/${item.id}`);
        tr.remove();
        say(listNote, `Removed ${item.name} from the catalogue. Past purchases keep it.`);
      } catch (error) {
        say(listNote, `${item.name}: ${explain(error)}`, 'error');
        busy(remove, false);
      }
    } }, 'Remove');
    const tr = h('tr', { class: fresh ? 'fresh' : null },
      h('td', { 'data-label': 'SKU' }, item.sku),
      h('th', { scope: 'row', 'data-label': 'Name' }, item.name),
      h('td', { 'data-label': 'Price' }, h('label', { for: priceId, class: 'sr' }, `Price of ${item.name}`), priceInput),
      h('td', { 'data-label': 'Stock' }, h('label', { for: stockId, class: 'sr' }, `Stock of ${item.name}`), stockInput),
      h('td', null, h('div', { class: 'row-actions' }, save, remove)));
    return tr;
  }

  let latest = 0;
  async function load(from) {
    const mine = ++latest;
    try {
      const { data, meta } = await api('GET', '/v2/items', { query: { q: find.control.value.trim(), limit: 20, cursor: from } });
      if (mine !== latest) return;
      replace(body, data.map((item) => row(item)));
      if (!data.length) body.append(h('tr', null, h('td', { colspan: '5' }, 'No items.')));
      cursor = meta.next_cursor;
      next.disabled = !cursor;
      first.hidden = !from;
      say(listNote, '');
    } catch (error) {
      say(listNote, explain(error), 'error');
    }
  }

  replace(root,
    h('section', { class: 'panel' }, h('h2', null, 'Add an item'),
      h('form', { class: 'grid-form', onsubmit: submit, 'aria-label': 'Add an item' },
        sku.el, name.el, price.el, stock.el, category.el, description.el, h('div', { class: 'actions' }, create)),
      region),
    h('section', { class: 'panel' }, h('h2', null, 'In the catalogue'),
      h('form', { class: 'filters', role: 'search', 'aria-label': 'Find items to edit', onsubmit: (e) => { e.preventDefault(); load(null); } },
        find.el, h('button', { type: 'submit' }, 'Find')),
      listNote,
      h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
        h('thead', null, h('tr', null, ['SKU', 'Name', 'Price (Rp)', 'Stock', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        body)),
      h('nav', { class: 'pager', 'aria-label': 'Item pages' }, first, next)),
    shelves);
  load(null);
}

/** Categories: add, rename, remove; `shown` hears the list each time it changes. */
function categoriesPanel(shown) {
  const region = h('div', { class: 'notes' });
  const name = field('New category', { required: true, maxlength: '100' });
  const add = h('button', { type: 'submit', class: 'primary' }, 'Add category');
  const list = h('ul', { class: 'categories', 'aria-label': 'Categories' });

  async function load() {
    try {
      const data = await everyCategory();
      replace(list, data.length ? data.map(row) : h('li', { class: 'empty' }, 'No categories yet.'));
      shown(data);
    } catch (error) {
      say(region, explain(error), 'error');
    }
  }

  async function write(button, call, done) {
    busy(button, true);
    try {
      const answer = await call();
      forgetCategories();
      say(region, done(answer));
      await load();
    } catch (error) {
      say(region, explain(error), 'error');
    } finally {
      busy(button, false);
    }
  }

  function row(c) {
    const inputId = uid('cat');
    const input = h('input', { id: inputId, value: c.name, maxlength: '100', required: true });
    const save = h('button', { type: 'submit' }, 'Rename');
    const remove = h('button', { type: 'button', class: 'danger', onclick: () => {
      if (!window.confirm(`Remove the category ${c.name}? Its items stay in the catalogue, without a category.`)) return;
      write(remove, () => api('DELETE', `/v1/categories/${c.id}`), () => `Removed the category ${c.name}; its items are now without one.`);
    } }, 'Remove');
    return h('li', null, h('form', { class: 'category-row', onsubmit: (event) => {
      event.preventDefault();
      const wanted = input.value.trim();
      if (!wanted) { say(region, 'A category needs a name.', 'error'); input.focus(); return; }
      write(save, () => api('PATCH', `/v1/categories/${c.id}`, { body: { name: wanted } }), ({ data }) => `Renamed ${c.name} to ${data.name}.`);
    } }, h('label', { for: inputId, class: 'sr' }, `Name of the category ${c.name}`), input, h('div', { class: 'row-actions' }, save, remove)));
  }

  const panel = h('section', { class: 'panel', 'aria-labelledby': 'categories-heading' },
    h('h2', { id: 'categories-heading' }, 'Categories'),
    h('form', { class: 'filters', 'aria-label': 'Add a category', onsubmit: (event) => {
      event.preventDefault();
      const wanted = name.control.value.trim();
      if (!wanted) { say(region, 'A category needs a name.', 'error'); name.control.focus(); return; }
      write(add, () => api('POST', '/v1/categories', { body: { name: wanted } }), ({ data }) => {
        name.control.value = '';
        return `Added the category ${data.name}.`;
      });
    } }, name.el, add),
    region, list);
  load();
  return panel;
}

// -- Reports -------------------------------------------------------------------------------------------

const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
const addDays = (text, n) => { const d = new Date(`${text}T00:00:00`); d.setDate(d.getDate() + n); return iso(d); };
const browserZone = () => { try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; } catch { return 'UTC'; } };
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
// A job's window as the days it covers: its end is exclusive, so the last day is the one before it.
const windowText = (p) => `${iso(new Date(p.from))} to ${iso(new Date(Date.parse(p.to) - 1))}`;
const GROUPS = [['day', 'Day'], ['item', 'Item'], ['user', 'Buyer']];

export function reports(root) {
  const today = iso(new Date());
  const from = field('From', { type: 'date', required: true, value: addDays(today, -30) });
  const to = field('To', { type: 'date', required: true, value: today });
  const group = field('Group by', { tag: 'select', options: GROUPS });
  group.control.value = 'day';
  const show = h('button', { type: 'submit', class: 'primary' }, 'Show');
  const region = h('div', { class: 'notes' });
  const chart = h('figure', { class: 'chart', 'data-testid': 'sales-chart' });
  const download = h('p', { class: 'download' });
  const figures = h('div');
  const jobs = h('tbody');
  const refresh = h('button', { type: 'button', onclick: () => loadJobs() }, 'Refresh');

  // `To` is read as a whole day, so the API's exclusive end is the next midnight, in the browser's zone.
  const wanted = () => ({ from: from.control.value, to: addDays(to.control.value, 1), group_by: group.control.value });
  async function queue(tz) {
    return api('POST', '/v1/reports', { body: { kind: 'sales', ...wanted(), ...(tz ? { tz } : {}) } });
  }

  /** A job of this window and grouping already asked for (the newest), so Show reuses it. */
  async function earlier() {
    const want = wanted();
    const start = new Date(`${want.from}T00:00:00`).getTime();
    const end = new Date(`${want.to}T00:00:00`).getTime();
    const { data } = await api('GET', '/v1/reports', { query: { per_page: 50 } });
    return data.find((job) => job.status !== 'failed' && job.params.group_by === want.group_by
      && job.params.tz === browserZone() && Date.parse(job.params.from) === start && Date.parse(job.params.to) === end);
  }

  function clearChart() {
    replace(chart);
    replace(download);
    replace(figures);
  }

  async function submit(event, fresh = false) {
    event?.preventDefault();
    // A chart of another window must not stand beside an error about this one.
    if (!from.control.value || !to.control.value) { clearChart(); say(region, 'Choose both days.', 'error'); return; }
    if (to.control.value < from.control.value) {
      clearChart();
      say(region, 'The last day (To) comes before the first (From). Choose a To on or after the From.', 'error');
      to.control.focus();
      return;
    }
    busy(show, true);
    try {
      let job = fresh ? null : await earlier();
      const reused = Boolean(job);
      if (!job) {
        try {
          ({ data: job } = await queue(browserZone()));
        } catch (error) {
          if (!(error.details?.fields || {}).tz) throw error;
          ({ data: job } = await queue(null)); // a zone the server does not know: report in UTC
        }
        loadJobs();
      }
      if (job.status === 'done') ({ data: job } = await api('GET', `/v1/reports/${job.id}`));
      job = await follow(job);
      if (job) draw(job, reused);
      else clearChart();
    } catch (error) {
      clearChart();
      say(region, explain(error), 'error');
    } finally {
      busy(show, false);
    }
  }

  /** Poll a queued job until the worker has finished it (or give up waiting, leaving it in the list). */
  async function follow(job) {
    const deadline = Date.now() + 120000;
    while (job.status === 'queued' || job.status === 'running') {
      say(region, `Report #${job.id} is ${job.status}…`);
      if (Date.now() > deadline) {
        say(region, `Report #${job.id} is still ${job.status}. It will appear under Report jobs when it is done.`);
        return null;
      }
      await sleep(500);
      ({ data: job } = await api('GET', `/v1/reports/${job.id}`));
    }
    loadJobs();
    if (job.status === 'failed') {
      say(region, `Report #${job.id} failed: ${job.error || 'no reason given'}.`, 'error');
      return null;
    }
    return job;
  }

  function draw(job, reused = false) {
    const r = job.result;
    const label = { day: 'day', item: 'item', user: 'buyer' }[r.group_by];
    say(region, `Report #${job.id}: ${rupiah(r.totals.revenue)} from ${r.totals.transactions} paid purchases.`);
    if (reused) {
      // The same window asked again: the finished report answers, and a new one is a click away.
      region.firstChild.append(` Worked out ${dateTime(job.finished_at || job.created_at)}. `,
        h('button', { type: 'button', class: 'ghost', onclick: () => submit(null, true) }, 'Work it out again'));
    }
    replace(chart,
      h('img', { src: `/v1/reports/${job.id}/chart.svg`, alt: `Bar chart of sales revenue by ${label}, ${windowText(job.params)}. The figures are in the table below.`, width: '860', height: '520' }),
      h('figcaption', null, `Revenue by ${label} · total ${rupiah(r.totals.revenue)}, ${r.totals.quantity} units`));
    replace(download, h('a', { href: `/v1/reports/${job.id}.csv`, download: `sales-report-${job.id}.csv`, class: 'button' }, 'Download CSV'));
    const keyName = (row) => (r.group_by === 'item' ? row.name || `Item ${row.key}` : r.group_by === 'user' ? row.username || `User ${row.key}` : row.key);
    replace(figures, h('details', null, h('summary', null, 'The figures as a table'),
      h('div', { class: 'table-wrap' }, h('table', null,
        h('thead', null, h('tr', null, [label[0].toUpperCase() + label.slice(1), 'Purchases', 'Units', 'Revenue'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, r.rows.map((row) => h('tr', null, h('th', { scope: 'row' }, String(keyName(row))),
          h('td', null, String(row.transactions)), h('td', null, String(row.quantity)), h('td', null, rupiah(row.revenue)))))))));
  }

  async function loadJobs() {
    try {
      const { data } = await api('GET', '/v1/reports', { query: { per_page: 10 } });
      replace(jobs, data.length ? data.map((job) => h('tr', null,
        h('td', { 'data-label': 'Report' }, `#${job.id}`),
        h('td', { 'data-label': 'Window' }, `${windowText(job.params)} by ${job.params.group_by}`),
        h('td', { 'data-label': 'Status' }, statusView(job.status).el),
        h('td', { 'data-label': 'Queued' }, dateTime(job.created_at)),
        h('td', { 'data-label': 'Files' }, job.status === 'done'
          ? [h('button', { type: 'button', class: 'ghost', onclick: async () => {
            try { const { data: full } = await api('GET', `/v1/reports/${job.id}`); draw(full); chart.scrollIntoView(); } catch (error) { say(region, explain(error), 'error'); }
          } }, `View #${job.id}`), ' ', h('a', { href: `/v1/reports/${job.id}.csv`, download: `sales-report-${job.id}.csv` }, `CSV #${job.id}`)]
          : ''))) : h('tr', null, h('td', { colspan: '5' }, 'No reports yet.')));
    } catch (error) {
      say(region, explain(error), 'error');
    }
  }

  replace(root,
    h('form', { class: 'filters', onsubmit: submit, 'aria-label': 'Sales report' }, from.el, to.el, group.el, show),
    h('p', { class: 'fine' }, `Paid purchases from the first day to the last, both included, by days of your time zone (${browserZone()}).`),
    region, chart, download, figures,
    h('section', { class: 'panel' }, h('h2', null, 'Report jobs'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
        h('thead', null, h('tr', null, ['Report', 'Window', 'Status', 'Queued', 'Files'].map((t) => h('th', { scope: 'col' }, t)))),
        jobs)),
      refresh));
  loadJobs();
}
