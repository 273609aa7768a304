// The catalogue (v2: keyset pages, filters, sort), the cart with its one-purchase checkout, and the
// code that confirms a purchase at or over the threshold.
import { h, replace, field, rupiah, dateTime, plural, say, busy, uid } from './dom.js';
import { api, explain, amount } from './api.js';
import {
  session, changes, cart, addToCart, setQuantity, setStock, removeLine, clearCart, cartTotal, itemNames,
} from './store.js';

const PAGE_SIZE = 12;
const SORTS = [['id', 'Default order'], ['name', 'Name, A–Z'], ['price', 'Lowest price'], ['-price', 'Highest price']];

// Kept between visits, so coming back from the cart shows the same page and filters.
const browse = { q: '', category_id: '', min_price: '', max_price: '', in_stock: false, sort: 'id', cursors: [null], page: 0 };
let categories = null;

async function loadCategories() {
  if (!categories) {
    categories = api('GET', '/v1/categories', { query: { per_page: 100 } }).then((r) => r.data, () => []);
  }
  return categories;
}

const tone = (text) => [...String(text)].reduce((n, c) => (n * 31 + c.charCodeAt(0)) % 6, 0);
const initials = (name) => name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]).join('').toUpperCase();

function stockText(stock) {
  if (stock <= 0) return h('p', { class: 'stock out' }, 'Sold out');
  return h('p', { class: stock <= 5 ? 'stock low' : 'stock' }, `${stock} in stock`);
}

function itemCard(item, region) {
  itemNames.set(item.id, item.name);
  const nameId = uid('item');
  const add = h('button', {
    type: 'button', class: 'primary', 'aria-describedby': nameId, disabled: item.stock <= 0,
    onclick: () => {
      addToCart(item);
      say(region, `Added ${item.name} to the cart.`);
    },
  }, 'Add to cart');
  return h('li', { class: 'card' },
    h('div', { class: `tile tone-${tone(item.name)}`, 'aria-hidden': 'true' }, initials(item.name)),
    h('div', { class: 'card-body' },
      h('h2', { id: nameId, class: 'name' }, item.name),
      item.category ? h('p', { class: 'cat' }, item.category.name) : null,
      item.description ? h('p', { class: 'desc' }, item.description) : null,
      h('p', { class: 'price' }, rupiah(amount(item.price))),
      stockText(item.stock)),
    add);
}

export function catalogue(root) {
  const q = field('Search', { type: 'search', name: 'q', value: browse.q, placeholder: 'Item name, e.g. beras', autocomplete: 'off' });
  const category = field('Category', { tag: 'select', name: 'category_id', options: [['', 'All categories']] });
  const min = field('Min price', { name: 'min_price', inputmode: 'numeric', value: browse.min_price, size: 7, placeholder: 'Rp' });
  const max = field('Max price', { name: 'max_price', inputmode: 'numeric', value: browse.max_price, size: 7, placeholder: 'Rp' });
  const sort = field('Sort by', { tag: 'select', name: 'sort', options: SORTS });
  q.el.classList.add('grow');
  min.el.classList.add('narrow');
  max.el.classList.add('narrow');
  sort.el.classList.add('sort');
  sort.control.value = browse.sort;
  const inStock = h('input', { type: 'checkbox', id: uid('f'), checked: browse.in_stock });
  const region = h('div', { class: 'notes' });
  const list = h('ul', { class: 'grid', 'aria-label': 'Items', 'aria-busy': 'true' });
  const count = h('p', { class: 'count', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', onclick: () => { browse.page -= 1; load(); } }, 'Previous');
  const next = h('button', { type: 'button', onclick: () => { browse.page += 1; load(); } }, 'Next');
  const pageNo = h('span', { class: 'page-no' });

  loadCategories().then((rows) => {
    for (const c of rows) category.control.append(h('option', { value: String(c.id) }, c.name));
    category.control.value = browse.category_id;
  });

  // On a phone the filters fold away behind a toggle; wider screens show them all, always.
  const moreFields = h('div', { class: 'more-fields', id: uid('filters') }, category.el, min.el, max.el, sort.el,
    h('div', { class: 'field check' }, inStock, h('label', { for: inStock.id }, 'In stock only')));
  const toggle = h('button', {
    type: 'button', class: 'ghost more-toggle', 'aria-controls': moreFields.id, 'aria-expanded': 'false',
    onclick: () => {
      const open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', String(open));
      moreFields.classList.toggle('open', open);
    },
  }, 'Filters and sort');
  if (browse.category_id || browse.min_price || browse.max_price || browse.in_stock || browse.sort !== 'id') toggle.click();

  const form = h('form', {
    class: 'filters', role: 'search', 'aria-label': 'Find items',
    onsubmit: (event) => {
      event.preventDefault();
      for (const [key, input] of [['min_price', min.control], ['max_price', max.control]]) {
        const value = input.value.replace(/[.\s]/g, '');
        if (value && !/^\d+$/.test(value)) {
          say(region, `${key === 'min_price' ? 'Min' : 'Max'} price: type whole rupiah, digits only.`, 'error');
          input.focus();
          return;
        }
        browse[key] = value;
      }
      Object.assign(browse, {
        q: q.control.value.trim(), category_id: category.control.value, sort: sort.control.value,
        in_stock: inStock.checked, cursors: [null], page: 0,
      });
      load();
    },
  },
  q.el, toggle, moreFields, h('button', { type: 'submit', class: 'primary' }, 'Search'));

  let latest = 0;
  async function load() {
    // Only the newest request may draw: an older answer arriving late must not replace it.
    const mine = ++latest;
    list.setAttribute('aria-busy', 'true');
    const query = {
      q: browse.q, category_id: browse.category_id, min_price: browse.min_price, max_price: browse.max_price,
      in_stock: browse.in_stock ? 'true' : '', sort: browse.sort, limit: PAGE_SIZE, cursor: browse.cursors[browse.page],
    };
    try {
      const { data, meta } = await api('GET', '/v2/items', { query });
      if (mine !== latest) return;
      browse.cursors[browse.page + 1] = meta.next_cursor;
      say(region, '');
      replace(list, data.map((item) => itemCard(item, region)));
      const filtered = browse.q || browse.category_id || browse.min_price || browse.max_price || browse.in_stock;
      count.textContent = data.length
        ? `Page ${browse.page + 1}: ${plural(data.length, 'item')}${browse.q ? ` matching “${browse.q}”` : ''}.`
        : (filtered ? 'No items match. Try fewer words or other filters.' : 'The shop has no items yet.');
      prev.disabled = browse.page === 0;
      next.disabled = !meta.next_cursor;
      pageNo.textContent = `Page ${browse.page + 1}`;
    } catch (error) {
      if (mine === latest) say(region, explain(error), 'error');
    } finally {
      if (mine === latest) list.setAttribute('aria-busy', 'false');
    }
  }

  replace(root, form, region, count, list, h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, pageNo, next));
  load();
}

// -- the cart ----------------------------------------------------------------------------------------

// One key per checkout: made before the first attempt and reused while the same cart is retried after a
// lost answer, so a double click or a retry buys once; dropped once the API has answered for good.
const KEY_STORE = 'toko.checkout';

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function checkoutKey(lines) {
  const fingerprint = JSON.stringify(lines);
  try {
    const kept = JSON.parse(sessionStorage.getItem(KEY_STORE) || 'null');
    if (kept && kept.fingerprint === fingerprint) return kept.key;
  } catch { /* none kept */ }
  const key = newKey();
  try { sessionStorage.setItem(KEY_STORE, JSON.stringify({ key, fingerprint })); } catch { /* memory only */ }
  return key;
}

const forgetKey = () => { try { sessionStorage.removeItem(KEY_STORE); } catch { /* nothing kept */ } };

function shortStockWords(error) {
  const short = (error.details.lines || []).map((line) => {
    const name = itemNames.get(line.item_id) || cart.lines.find((l) => l.id === line.item_id)?.name || `Item ${line.item_id}`;
    setStock(line.item_id, line.available);
    return line.available > 0
      ? `${name}: you asked for ${line.requested}, only ${line.available} left`
      : `${name}: sold out`;
  });
  return `Not enough stock, so nothing was bought. ${short.join('; ')}.`;
}

function cartLine(line, refs) {
  const qtyId = uid('qty');
  const qty = h('input', {
    id: qtyId, type: 'number', min: '1', step: '1', inputmode: 'numeric', value: String(line.quantity), class: 'qty',
    onchange: () => {
      const n = Number(qty.value);
      if (Number.isInteger(n) && n > 0) setQuantity(line.id, n);
      else qty.value = String(line.quantity);
    },
  });
  const sub = h('p', { class: 'line-sub' });
  const warn = h('span', { class: 'warn' });
  refs.set(line.id, { sub, warn });
  return h('li', { class: 'line' },
    h('div', { class: 'line-name' }, h('strong', null, line.name), h('span', { class: 'each' }, `${rupiah(line.price)} each`), warn),
    h('div', { class: 'line-qty' }, h('label', { for: qtyId }, 'Quantity', h('span', { class: 'sr' }, ` of ${line.name}`)), qty),
    sub,
    h('button', { type: 'button', class: 'ghost', 'aria-label': `Remove ${line.name}`, onclick: () => removeLine(line.id) }, 'Remove'));
}

export function cartPage(root) {
  const linesBox = h('div');
  const result = h('div', { class: 'result', 'aria-live': 'polite' });
  const refs = new Map();
  const total = h('strong');
  let shown = null;
  let inFlight = false;

  // Only a change of which items are in the cart rebuilds the list: a quantity change updates the
  // figures in place, so the field being typed in keeps its focus.
  function draw() {
    const ids = cart.lines.map((l) => l.id).join() + (session.user ? '+' : '-');
    if (ids !== shown) build();
    shown = ids;
    for (const line of cart.lines) {
      const ref = refs.get(line.id);
      ref.sub.textContent = rupiah(line.price * line.quantity);
      ref.warn.textContent = line.quantity > line.stock ? (line.stock > 0 ? `Only ${line.stock} in stock` : 'Sold out') : '';
    }
    total.textContent = rupiah(cartTotal());
  }

  function build() {
    refs.clear();
    if (!cart.lines.length) {
      replace(linesBox, h('p', { class: 'empty' }, 'Your cart is empty. ', h('a', { href: '#/' }, 'Continue shopping')));
      return;
    }
    const checkout = h('button', { type: 'button', class: 'primary big', onclick: () => buy(checkout) }, 'Checkout');
    replace(linesBox,
      h('ul', { class: 'lines', 'aria-label': 'Items in the cart' }, cart.lines.map((line) => cartLine(line, refs))),
      h('div', { class: 'checkout' },
        h('p', { class: 'total' }, 'Total ', total),
        h('p', { class: 'fine' }, 'Prices are confirmed when you check out.'),
        session.user ? checkout : h('p', { class: 'note' }, 'To check out, ', h('a', { href: '#/login' }, 'sign in or register'), '.')));
  }

  async function buy(button) {
    if (inFlight) return;
    inFlight = true;
    busy(button, true);
    const lines = cart.lines.map((l) => ({ item_id: l.id, quantity: l.quantity }));
    const key = checkoutKey(lines);
    say(result, 'Placing your order…');
    try {
      const { data: txn } = await api('POST', '/v1/transactions', { body: { lines }, headers: { 'Idempotency-Key': key } });
      forgetKey();
      clearCart();
      showPurchase(result, txn);
    } catch (error) {
      if (error.status && error.status < 500 && error.code !== 'idempotency_in_flight') forgetKey();
      say(result, error.code === 'insufficient_stock' ? shortStockWords(error) : explain(error), 'error');
    } finally {
      inFlight = false;
      busy(button, false);
    }
  }

  const onChange = () => {
    if (root.isConnected) draw();
    else { changes.removeEventListener('cart', onChange); changes.removeEventListener('user', onChange); }
  };
  changes.addEventListener('cart', onChange);
  changes.addEventListener('user', onChange);
  replace(root, linesBox, result);
  draw();
}

/** A purchase's outcome: its status word in an element of its own, and the code form when one is needed. */
export function showPurchase(box, txn) {
  const status = h('span', { class: `status s-${txn.status}` }, txn.status);
  const items = txn.lines.reduce((n, l) => n + l.quantity, 0);
  replace(box, h('section', { class: 'receipt', 'aria-labelledby': `receipt-${txn.id}` },
    h('h2', { id: `receipt-${txn.id}` }, `Purchase #${txn.id}`),
    h('p', null, 'Status: ', status),
    h('p', null, `${plural(items, 'item')}, total `, h('strong', null, rupiah(txn.total)), ` · ${dateTime(txn.created_at)}`),
    txn.status === 'paid' ? h('p', null, 'Thank you! ', h('a', { href: '#/purchases' }, 'See your purchases')) : null));
  if (txn.status === 'awaiting_otp') codeForm(box.firstChild, txn, status);
}

/** Ask for a code for this purchase, check the one typed, then confirm the purchase with it. */
export function codeForm(box, txn, status) {
  const region = h('div', { class: 'notes' });
  const code = field('Code', { inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6', pattern: '[0-9]{6}', required: true, class: 'code' },
    'The six digits we sent you.');
  const debug = h('span', { 'data-testid': 'debug-code' });
  const debugNote = h('p', { class: 'debug', hidden: true }, 'Test mode, your code is ', debug);
  code.el.append(debugNote);
  const confirm = h('button', { type: 'submit', class: 'primary' }, 'Confirm');
  const again = h('button', { type: 'button', class: 'ghost', onclick: () => request() }, 'Send a new code');
  let otp = null;

  async function request() {
    busy(again, true);
    try {
      ({ data: otp } = await api('POST', '/v1/otps', { body: { purpose: 'confirm_transaction', reference: String(txn.id) } }));
      debug.textContent = otp.debug_code || '';
      debugNote.hidden = !otp.debug_code;
      const by = otp.channel === 'sms' ? 'text message' : 'email';
      say(region, `We sent you a code by ${by}. It works until ${dateTime(otp.expires_at)}.`);
    } catch (error) {
      say(region, explain(error), 'error');
    } finally {
      busy(again, false);
    }
  }

  async function submit(event) {
    event.preventDefault();
    const typed = code.control.value.trim();
    if (!/^\d{6}$/.test(typed)) { say(region, 'Type the six digits of the code.', 'error'); code.control.focus(); return; }
    if (!otp) { say(region, 'Ask for a code first.', 'error'); return; }
    busy(confirm, true);
    try {
      try {
        await api('POST', `/v1/otps/${otp.id}/verify`, { body: { code: typed } });
      } catch (error) {
        // Verified already (say, an answer lost on the way): the confirmation below still needs doing.
        if (error.code !== 'otp_used') throw error;
      }
      const { data } = await api('POST', `/v1/transactions/${txn.id}/confirm`, { body: { otp_id: otp.id } });
      status.textContent = data.status;
      status.className = `status s-${data.status}`;
      form.replaceWith(h('p', { class: 'note ok' }, 'Confirmed, thank you! ', h('a', { href: '#/purchases' }, 'See your purchases')));
    } catch (error) {
      say(region, explain(error), 'error');
    } finally {
      busy(confirm, false);
    }
  }

  const form = h('form', { class: 'code-form', onsubmit: submit },
    h('p', null, 'This purchase needs a confirmation code before it is paid.'),
    code.el, h('div', { class: 'actions' }, confirm, again), region);
  box.append(form);
  request();
}
