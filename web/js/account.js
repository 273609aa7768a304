// Logging in and registering, and My purchases (with Cancel, and the code for a purchase awaiting one).
import { h, replace, field, rupiah, dateTime, say, busy, statusView } from './dom.js';
import { api, explain } from './api.js';
import { session, sessionReady, setUser, itemNames } from './store.js';
import { showPurchase } from './shop.js';

function authForm(title, fields, button, submit) {
  const headingId = `${title.toLowerCase().replace(/\W+/g, '-')}-heading`;
  const region = h('div', { class: 'notes' });
  const action = h('button', { type: 'submit', class: 'primary' }, button);
  const form = h('form', {
    'aria-labelledby': headingId,
    onsubmit: async (event) => {
      event.preventDefault();
      busy(action, true);
      try {
        await submit(Object.fromEntries(fields.map(([key, f]) => [key, f.control.value])));
        location.hash = '#/';
      } catch (error) {
        say(region, explain(error), 'error');
      } finally {
        busy(action, false);
      }
    },
  }, fields.map(([, f]) => f.el), action, region);
  return h('section', { class: 'panel' }, h('h2', { id: headingId }, title), form);
}

async function startSession(username, password) {
  const { data } = await api('POST', '/v1/sessions', { body: { username, password } });
  setUser(data.user);
}

export function login(root) {
  const logIn = authForm('Log in', [
    ['username', field('Username', { autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' })],
    ['password', field('Password', { type: 'password', autocomplete: 'current-password', required: true })],
  ], 'Log in', ({ username, password }) => startSession(username.trim(), password));
  const register = authForm('Register', [
    ['username', field('Username', { autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false', maxlength: '64' })],
    ['email', field('Email', { type: 'email', autocomplete: 'email', required: true })],
    ['password', field('Password', { type: 'password', autocomplete: 'new-password', required: true, minlength: '8' }, 'At least 8 characters.')],
    ['phone', field('Phone (optional)', { type: 'tel', autocomplete: 'tel' }, 'For confirmation codes by text message.')],
  ], 'Register', async ({ username, email, password, phone }) => {
    const body = { username: username.trim(), email: email.trim(), password };
    if (phone.trim()) body.phone = phone.trim();
    await api('POST', '/v1/users', { body });
    await startSession(body.username, password);
  });
  replace(root, h('div', { class: 'auth' }, logIn, register));
}

function needsLogin(root, what) {
  replace(root, h('p', { class: 'note' }, 'To see ' + what + ', ', h('a', { href: '#/login' }, 'sign in or register'), '.'));
}

async function nameItems(lines) {
  const missing = [...new Set(lines.map((l) => l.item_id))].filter((id) => !itemNames.has(id));
  await Promise.all(missing.map((id) => api('GET', `/v2/items/${id}`).then(
    ({ data }) => itemNames.set(id, data.name),
    () => itemNames.set(id, `Item #${id} (no longer sold)`))));
}

const cancellable = (txn) => txn.status === 'paid'
  || (txn.status === 'awaiting_otp' && (!txn.confirm_by || new Date(txn.confirm_by) > new Date()));

function purchaseCard(txn, region) {
  const status = statusView(txn.status);
  const actions = h('div', { class: 'actions' });
  const card = h('li', { class: 'purchase' },
    h('div', { class: 'purchase-head' },
      h('h2', null, `Purchase #${txn.id}`),
      status.el),
    h('p', { class: 'when' }, h('time', { datetime: txn.created_at }, dateTime(txn.created_at))),
    h('ul', { class: 'purchase-lines' }, txn.lines.map((l) => h('li', null,
      `${l.quantity} × ${itemNames.get(l.item_id)}`, h('span', null, rupiah(l.subtotal))))),
    h('p', { class: 'total' }, 'Total ', h('strong', null, rupiah(txn.total))),
    actions);

  function drawActions() {
    replace(actions,
      txn.status === 'awaiting_otp' && cancellable(txn) ? h('a', { class: 'button', href: `#/purchases/${txn.id}` }, 'Enter the code') : null,
      cancellable(txn) ? h('button', { type: 'button', class: 'danger', onclick: cancel }, 'Cancel') : null);
  }

  async function cancel(event) {
    const button = event.currentTarget;
    // A paid purchase gives its money back: one stray tap must not do that.
    const ask = txn.status === 'paid'
      ? `Cancel purchase #${txn.id}? You get ${rupiah(txn.total)} back and the items go back on the shelf.`
      : `Cancel purchase #${txn.id}? It is still waiting for its code; nothing has been paid.`;
    if (!window.confirm(ask)) return;
    busy(button, true);
    try {
      ({ data: txn } = await api('DELETE', `/v1/transactions/${txn.id}`));
      status.set(txn.status);
      drawActions();
      say(region, `Purchase #${txn.id} is cancelled; its items are back in stock.`);
    } catch (error) {
      say(region, explain(error), 'error');
      busy(button, false);
    }
  }

  drawActions();
  return card;
}

export async function purchases(root) {
  await sessionReady;
  if (!session.user) { needsLogin(root, 'your purchases'); return; }
  const region = h('div', { class: 'notes' });
  const list = h('ol', { class: 'purchases', 'aria-label': 'Your purchases, newest first' });
  const more = h('button', { type: 'button', hidden: true, onclick: () => load() }, 'Older purchases');
  const perPage = 10;
  let page = 0;
  replace(root, region, list, more);

  async function load() {
    busy(more, true);
    try {
      page += 1;
      const { data } = await api('GET', '/v1/transactions', { query: { user_id: session.user.id, page, per_page: perPage } });
      await nameItems(data.flatMap((t) => t.lines));
      list.append(...data.map((txn) => purchaseCard(txn, region)));
      if (page === 1 && !data.length) {
        replace(list, h('li', { class: 'empty' }, 'No purchases yet. ', h('a', { href: '#/' }, 'Continue shopping')));
      }
      more.hidden = data.length < perPage;
    } catch (error) {
      page -= 1;
      say(region, explain(error), 'error');
    } finally {
      busy(more, false);
    }
  }
  load();
}

export async function confirmPage(root, { args: [id] }) {
  await sessionReady;
  if (!session.user) { needsLogin(root, 'this purchase'); return; }
  const box = h('div', { 'aria-live': 'polite' });
  replace(root, box);
  try {
    const { data } = await api('GET', `/v1/transactions/${id}`);
    showPurchase(box, data);
    if (data.status === 'cancelled' || data.status === 'expired') {
      box.append(h('p', { class: 'note' }, `This purchase is ${data.status}: there is nothing to confirm. `,
        h('a', { href: '#/purchases' }, 'Back to your purchases')));
    }
  } catch (error) {
    say(box, explain(error), 'error');
  }
}
