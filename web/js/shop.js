// The catalogue (v2: keyset pages, filters, sort), the cart with its one-purchase checkout, and the
// code that confirms a purchase at or over the threshold.
import { h, replace, field, rupiah, dateTime, plural, say, busy, uid, statusView } from './dom.js';
import { api, explain, amount } from './api.js';
import {
  session, changes, cart, addToCart, inCart, setQuantity, setStock, refreshLine, removeLine, clearCart, cartTotal, itemNames,
} from './store.js';

const PAGE_SIZE = 12;
const SORTS = [['id', 'Default order'], ['name', 'Name, A–Z'], ['price', 'Lowest price'], ['-price', 'Highest price']];
let categories = null;
// The catalogue's address the person last saw, so an item's page leads back to the same results (a
// reload of the item's page included).
const LAST_KEY = 'toko.catalogue';
const lastCatalogue = () => { try { return sessionStorage.getItem(LAST_KEY) || '#/'; } catch { return '#/'; } };
const seeCatalogue = (address) => { try { sessionStorage.setItem(LAST_KEY, address); } catch { /* memory only */ } };

/** Every category, a page of 100 at a time, so the filter offers all of them however many there are. */
export async function everyCategory() {
  const all = [];
  for (let page = 1; ; page += 1) {
    const { data } = await api('GET', '/v1/categories', { query: { page, per_page: 100 } });
    all.push(...data);
    if (data.length < 100) return all;
  }
}

async function loadCategories() {
  if (!categories) categories = everyCategory().catch(() => []);
  return categories;
}

/** Categories changed (an admin's page): the next catalogue asks again. */
export function forgetCategories() { categories = null; }

const tone = (text) => [...String(text)].reduce((n, c) => (n * 31 + c.charCodeAt(0)) % 6, 0);
const initials = (name) => name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]).join('').toUpperCase();
const itemHref = (item) => `#/items/${item.id}`;

function stockText(stock) {
  if (stock <= 0) return h('p', { class: 'stock out' }, 'Sold out');
  return h('p', { class: stock <= 5 ? 'stock low' : 'stock' }, `${stock} in stock`);
}

/** Add to the cart no more than the stock shown, and say what happened. */
function addAndSay(item, quantity, region) {
  const added = addToCart(item, quantity);
  if (added === quantity) say(region, `Added ${added === 1 ? '' : `${added} × `}${item.name} to the cart.`);
  else if (added > 0) say(region, `Added ${added} × ${item.name}: with those, your cart holds all ${item.stock} in stock.`, 'warn');
  else say(region, `Your cart already holds all ${plural(item.stock, 'item')} of ${item.name} in stock.`, 'warn');
  return added;
}

function itemCard(item, region) {
  itemNames.set(item.id, item.name);
  const nameId = uid('item');
  const add = h('button', {
    type: 'button', class: 'primary', 'aria-describedby': nameId, disabled: item.stock <= 0,
    onclick: () => addAndSay(item, 1, region),
  }, 'Add to cart');
  return h('li', { class: 'card' },
    h('div', { class: `tile tone-${tone(item.name)}`, 'aria-hidden': 'true' }, initials(item.name)),
    h('div', { class: 'card-body' },
      h('h2', { id: nameId, class: 'name' }, h('a', { href: itemHref(item) }, item.name)),
      item.category ? h('p', { class: 'cat' }, item.category.name) : null,
      item.description ? h('p', { class: 'desc' }, item.description) : null,
      h('p', { class: 'price' }, rupiah(amount(item.price))),
      stockText(item.stock)),
    add);
}

/** Cards' shape while the page loads: the grid does not jump when the items arrive. */
const skeletons = (n) => Array.from({ length: n }, () => h('li', { class: 'card skeleton', 'aria-hidden': 'true' },
  h('div', { class: 'tile' }), h('div', { class: 'card-body' }, h('p', { class: 'sk-line' }), h('p', { class: 'sk-line short' }))));

// -- the catalogue's address: #/?q=&category_id=&min_price=&max_price=&in_stock=&sort=&cursor=&page= ---

const digits = (text) => (/^\d+$/.test(text || '') ? text : '');

function browseFrom(query) {
  const sort = query.get('sort');
  const page = Number(query.get('page'));
  const cursor = query.get('cursor') || '';
  return {
    q: (query.get('q') || '').trim(), category_id: digits(query.get('category_id')),
    min_price: digits(query.get('min_price')), max_price: digits(query.get('max_price')),
    in_stock: query.get('in_stock') === 'true', sort: SORTS.some(([key]) => key === sort) ? sort : 'id',
    cursor, page: cursor && Number.isSafeInteger(page) && page > 1 ? page : (cursor ? 2 : 1),
  };
}

function addressOf(state) {
  const params = new URLSearchParams();
  for (const key of ['q', 'category_id', 'min_price', 'max_price']) if (state[key]) params.set(key, state[key]);
  if (state.in_stock) params.set('in_stock', 'true');
  if (state.sort !== 'id') params.set('sort', state.sort);
  if (state.cursor) { params.set('cursor', state.cursor); params.set('page', String(state.page)); }
  const text = String(params);
  return text ? `#/?${text}` : '#/';
}

// A keyset page knows the next one only: the page before each cursor seen is remembered for Previous.
const PAGES_KEY = 'toko.pages';
function pagesSeen() {
  try { return JSON.parse(sessionStorage.getItem(PAGES_KEY) || '{}') || {}; } catch { return {}; }
}
function rememberPage(cursor, before) {
  const seen = pagesSeen();
  seen[cursor] = before;
  const keys = Object.keys(seen);
  for (const key of keys.slice(0, Math.max(0, keys.length - 200))) delete seen[key];
  try { sessionStorage.setItem(PAGES_KEY, JSON.stringify(seen)); } catch { /* memory only: Previous starts over */ }
}

export function catalogue(root, { query }) {
  let browse = browseFrom(query);
  const q = field('Search', { type: 'search', name: 'q', placeholder: 'Item name, e.g. beras', autocomplete: 'off' });
  const category = field('Category', { tag: 'select', name: 'category_id', options: [['', 'All categories']] });
  const min = field('Min price', { name: 'min_price', inputmode: 'numeric', size: 7, placeholder: 'Rp' });
  const max = field('Max price', { name: 'max_price', inputmode: 'numeric', size: 7, placeholder: 'Rp' });
  const sort = field('Sort by', { tag: 'select', name: 'sort', options: SORTS });
  q.el.classList.add('grow');
  min.el.classList.add('narrow');
  max.el.classList.add('narrow');
  sort.el.classList.add('sort');
  const inStock = h('input', { type: 'checkbox', id: uid('f') });
  const region = h('div', { class: 'notes' });
  const list = h('ul', { class: 'grid', 'aria-label': 'Items', 'aria-busy': 'true' }, skeletons(PAGE_SIZE));
  const count = h('p', { class: 'count', 'aria-live': 'polite' });
  // Disabled until a page has loaded: before that there is no page to move from.
  const prev = h('button', { type: 'button', disabled: true, onclick: () => go({ ...browse, ...previous() }) }, 'Previous');
  const next = h('button', { type: 'button', disabled: true, onclick: () => go({ ...browse, cursor: nextCursor, page: browse.page + 1 }) }, 'Next');
  const pageNo = h('span', { class: 'page-no' });
  let nextCursor = null;
  let categoriesShown = false;

  loadCategories().then((rows) => {
    for (const c of rows) category.control.append(h('option', { value: String(c.id) }, c.name));
    categoriesShown = true;
    category.control.value = browse.category_id;
  });

  // On a phone the filters fold away behind a toggle; wider screens show them all, always.
  const moreFields = h('div', { class: 'more-fields', id: uid('filters') }, category.el, min.el, max.el, sort.el,
    h('div', { class: 'field check' }, inStock, h('label', { for: inStock.id }, 'In stock only')));
  const toggle = h('button', {
    type: 'button', class: 'ghost more-toggle', 'aria-controls': moreFields.id, 'aria-expanded': 'false',
    onclick: () => fold(toggle.getAttribute('aria-expanded') !== 'true'),
  }, 'Filters and sort');
  function fold(open) {
    toggle.setAttribute('aria-expanded', String(open));
    moreFields.classList.toggle('open', open);
  }

  function showForm() {
    q.control.value = browse.q;
    if (categoriesShown) category.control.value = browse.category_id;
    min.control.value = browse.min_price;
    max.control.value = browse.max_price;
    sort.control.value = browse.sort;
    inStock.checked = browse.in_stock;
    if (browse.category_id || browse.min_price || browse.max_price || browse.in_stock || browse.sort !== 'id') fold(true);
  }

  function previous() {
    if (browse.page <= 2) return { cursor: '', page: 1 };
    const before = pagesSeen()[browse.cursor];
    // Reached from a shared address, the page before is unknown: Previous starts from the first.
    return before ? { cursor: before, page: browse.page - 1 } : { cursor: '', page: 1 };
  }

  /** Show a state by its address, so that Back, a reload and a shared link all land on it. */
  function go(state) {
    if (state.cursor && state.cursor === nextCursor) rememberPage(state.cursor, browse.cursor);
    const target = addressOf(state);
    if (target === (location.hash || '#/')) { browse = state; load(); } else location.hash = target;
  }

  const form = h('form', {
    class: 'filters', role: 'search', 'aria-label': 'Find items',
    onsubmit: (event) => {
      event.preventDefault();
      const prices = {};
      for (const [key, input] of [['min_price', min.control], ['max_price', max.control]]) {
        const value = input.value.replace(/[.\s]/g, '');
        if (value && !/^\d+$/.test(value)) {
          say(region, `${key === 'min_price' ? 'Min' : 'Max'} price: type whole rupiah, digits only.`, 'error');
          input.focus();
          return;
        }
        prices[key] = value;
      }
      go({
        q: q.control.value.trim(), category_id: category.control.value, sort: sort.control.value,
        in_stock: inStock.checked, ...prices, cursor: '', page: 1,
      });
    },
  },
  q.el, toggle, moreFields, h('button', { type: 'submit', class: 'primary' }, 'Search'));

  let latest = 0;
  let pagerPressed = false; // a Previous or Next press whose page is still on its way
  async function load() {
    // Only the newest request may draw: an older answer arriving late must not replace it.
    const mine = ++latest;
    seeCatalogue(addressOf(browse));
    list.setAttribute('aria-busy', 'true');
    // A disabled button drops the keyboard's focus: the pager takes it back once the page is there.
    const paging = pagerPressed || document.activeElement === prev || document.activeElement === next;
    pagerPressed = paging;
    prev.disabled = true;
    next.disabled = true;
    const query = {
      q: browse.q, category_id: browse.category_id, min_price: browse.min_price, max_price: browse.max_price,
      in_stock: browse.in_stock ? 'true' : '', sort: browse.sort, limit: PAGE_SIZE, cursor: browse.cursor,
    };
    try {
      const { data, meta } = await api('GET', '/v2/items', { query });
      if (mine !== latest) return;
      nextCursor = meta.next_cursor;
      say(region, '');
      replace(list, data.map((item) => itemCard(item, region)));
      const filtered = browse.q || browse.category_id || browse.min_price || browse.max_price || browse.in_stock;
      count.textContent = data.length
        ? `Page ${browse.page}: ${plural(data.length, 'item')}${browse.q ? ` matching “${browse.q}”` : ''}.`
        : (filtered ? 'No items match. Try fewer words or other filters.' : 'The shop has no items yet.');
      prev.disabled = browse.page <= 1;
      next.disabled = !nextCursor;
      pageNo.textContent = `Page ${browse.page}`;
      if (paging) (next.disabled ? prev : next).focus();
    } catch (error) {
      if (mine !== latest) return;
      replace(list);
      count.textContent = '';
      say(region, explain(error), 'error');
      if (error.code === 'invalid_cursor') {
        region.firstChild.append(' ', h('a', { href: addressOf({ ...browse, cursor: '', page: 1 }) }, 'Go to the first page'));
      }
    } finally {
      if (mine === latest) {
        list.setAttribute('aria-busy', 'false');
        pagerPressed = false;
      }
    }
  }

  replace(root, form, region, count, list, h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, pageNo, next));
  showForm();
  load();
  return {
    update(query) {
      browse = browseFrom(query);
      showForm();
      load();
    },
  };
}

// -- an item's own page --------------------------------------------------------------------------------

export function itemPage(root, { args: [id], heading }) {
  const back = h('p', { class: 'back' }, h('a', { href: lastCatalogue() }, h('span', { 'aria-hidden': 'true' }, '← '), 'Back to the catalogue'));
  replace(root, back, h('div', { class: 'item-page', 'aria-busy': 'true' },
    h('div', { class: 'tile big skeleton', 'aria-hidden': 'true' }),
    h('div', { class: 'item-info', 'aria-hidden': 'true' }, h('p', { class: 'sk-line' }), h('p', { class: 'sk-line short' }), h('p', { class: 'sk-line' }))));
  show();

  async function show() {
    let item;
    try {
      ({ data: item } = await api('GET', `/v2/items/${id}`));
    } catch (error) {
      if (!root.isConnected) return;
      heading.textContent = error.status === 404 ? 'Item not found' : 'Item';
      document.title = `${heading.textContent} · toko`;
      replace(root, back, h('p', { class: 'note error', role: 'alert' },
        error.status === 404 ? 'This item is not in the shop: it may have been removed.' : explain(error)));
      return;
    }
    if (!root.isConnected) return;
    itemNames.set(item.id, item.name);
    heading.textContent = item.name;
    document.title = `${item.name} · toko`;
    const region = h('div', { class: 'notes' });
    const room = () => Math.max(item.stock - inCart(item.id), 0);
    const quantity = field('Quantity', { type: 'number', min: '1', step: '1', inputmode: 'numeric', value: '1', class: 'qty' });
    const add = h('button', { type: 'submit', class: 'primary big' }, 'Add to cart');
    const holding = h('p', { class: 'in-cart', 'aria-live': 'polite' });
    const refresh = () => {
      const have = inCart(item.id);
      quantity.control.max = String(Math.max(room(), 1));
      add.disabled = room() <= 0;
      quantity.control.disabled = room() <= 0;
      const words = have >= item.stock ? `Your cart holds all ${item.stock} in stock. ` : `Your cart holds ${have}. `;
      replace(holding, have ? [words, h('a', { href: '#/cart' }, 'Go to the cart')] : null);
    };
    const buy = h('form', {
      class: 'buy', novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const n = Number(quantity.control.value);
        if (!Number.isInteger(n) || n < 1) { say(region, 'Quantity: type a whole number, 1 or more.', 'error'); quantity.control.focus(); return; }
        const left = room();
        if (n > left) {
          quantity.control.value = String(Math.max(left, 1));
          say(region, `Only ${left} more can go in your cart: the shop has ${item.stock}${inCart(item.id) ? ` and your cart holds ${inCart(item.id)}` : ''}.`, 'error');
          quantity.control.focus();
          return;
        }
        addAndSay(item, n, region);
        quantity.control.value = '1';
      },
    }, quantity.el, add);
    replace(root, back,
      h('article', { class: 'item-page' },
        h('div', { class: `tile big tone-${tone(item.name)}`, 'aria-hidden': 'true' }, initials(item.name)),
        h('div', { class: 'item-info' },
          item.category ? h('p', { class: 'cat' }, h('a', { href: addressOf({ ...browseFrom(new URLSearchParams()), category_id: String(item.category.id) }) }, item.category.name)) : null,
          h('p', { class: 'price' }, rupiah(amount(item.price))),
          stockText(item.stock),
          item.description ? h('p', { class: 'about' }, item.description) : null,
          item.stock > 0 ? buy : null, holding, region)));
    refresh();
    const onCart = () => { if (root.isConnected) refresh(); else changes.removeEventListener('cart', onCart); };
    changes.addEventListener('cart', onCart);
    if (item.category) moreLike(root, item);
  }
}

/** A few other items of the same category (v2's category listing), under the item. */
async function moreLike(root, item) {
  let others;
  try {
    ({ data: others } = await api('GET', `/v2/categories/${item.category.id}/items`, { query: { limit: 5 } }));
  } catch {
    return; // the item's own page stands without them
  }
  others = others.filter((other) => other.id !== item.id).slice(0, 4);
  if (!others.length || !root.isConnected) return;
  const region = h('div', { class: 'notes' });
  const headingId = uid('more');
  root.append(h('section', { class: 'more', 'aria-labelledby': headingId },
    h('h2', { id: headingId }, `More in ${item.category.name}`), region,
    h('ul', { class: 'grid', 'aria-labelledby': headingId }, others.map((other) => itemCard(other, region)))));
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
  return `Not enough stock, so nothing was bought. ${short.join('; ')}. The cart now holds what is left: check it and try again.`;
}

function cartLine(line, refs) {
  const qtyId = uid('qty');
  const qty = h('input', {
    id: qtyId, type: 'number', min: '1', step: '1', inputmode: 'numeric', value: String(line.quantity), class: 'qty',
    onchange: () => {
      const n = Number(qty.value);
      const ref = refs.get(line.id);
      if (!Number.isInteger(n) || n < 1) { qty.value = String(line.quantity); return; }
      const kept = setQuantity(line.id, n);
      qty.value = String(kept);
      ref.note.textContent = kept < n ? `Only ${line.stock} in stock, so the quantity is ${kept}.` : '';
      ref.noteStock = line.stock;
    },
  });
  const sub = h('p', { class: 'line-sub' });
  const warn = h('span', { class: 'warn' });
  const stock = h('span', { class: 'each' });
  const note = h('span', { class: 'warn', 'aria-live': 'polite' });
  refs.set(line.id, { sub, warn, stock, qty, note });
  return h('li', { class: 'line' },
    h('div', { class: 'line-name' }, h('a', { href: `#/items/${line.id}` }, h('strong', null, line.name)),
      h('span', { class: 'each' }, `${rupiah(line.price)} each · `, stock), warn, note),
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
  let bought = false;

  // Only a change of which items are in the cart rebuilds the list: a quantity change updates the
  // figures in place, so the field being typed in keeps its focus.
  function draw() {
    const ids = cart.lines.map((l) => l.id).join() + (session.user ? '+' : '-');
    if (ids !== shown) build();
    shown = ids;
    for (const line of cart.lines) {
      const ref = refs.get(line.id);
      ref.sub.textContent = rupiah(line.price * line.quantity);
      ref.stock.textContent = line.stock > 0 ? `${line.stock} in stock` : 'sold out';
      ref.qty.max = String(Math.max(line.stock, 1));
      if (document.activeElement !== ref.qty) ref.qty.value = String(line.quantity);
      if (ref.noteStock !== line.stock) ref.note.textContent = ''; // said of a stock that has moved since
      ref.warn.textContent = line.quantity > line.stock ? (line.stock > 0 ? `Only ${line.stock} in stock` : 'Sold out') : '';
    }
    total.textContent = rupiah(cartTotal());
  }

  function build() {
    refs.clear();
    if (!cart.lines.length) {
      // Just bought: the receipt below says what happened, not that the cart is empty.
      replace(linesBox, bought ? null : h('p', { class: 'empty' }, 'Your cart is empty. ', h('a', { href: '#/' }, 'Continue shopping')));
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
      bought = true;
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

  // The shelf may have moved since the items went in: the page shows today's stock and prices.
  async function refreshLines() {
    await Promise.all(cart.lines.map((line) => api('GET', `/v2/items/${line.id}`).then(
      ({ data }) => refreshLine(data),
      (error) => { if (error.status === 404) setStock(line.id, 0); })));
  }

  const onChange = () => {
    if (root.isConnected) draw();
    else { changes.removeEventListener('cart', onChange); changes.removeEventListener('user', onChange); }
  };
  changes.addEventListener('cart', onChange);
  changes.addEventListener('user', onChange);
  replace(root, linesBox, result);
  draw();
  refreshLines();
}

/** A purchase's outcome: its status word in an element of its own, and the code form when one is needed. */
export function showPurchase(box, txn) {
  const status = statusView(txn.status);
  const items = txn.lines.reduce((n, l) => n + l.quantity, 0);
  replace(box, h('section', { class: 'receipt', 'aria-labelledby': `receipt-${txn.id}` },
    h('h2', { id: `receipt-${txn.id}` }, `Purchase #${txn.id}`),
    h('p', null, 'Status: ', status.el),
    h('p', null, `${plural(items, 'item')}, total `, h('strong', null, rupiah(txn.total)), ` · ${dateTime(txn.created_at)}`),
    txn.status === 'paid' ? h('p', null, 'Thank you! ', h('a', { href: '#/purchases' }, 'See your purchases'), ' · ', h('a', { href: lastCatalogue() }, 'Continue shopping')) : null));
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
      status.set(data.status);
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
