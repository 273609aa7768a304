// The storefront's shell: the header, the hash router, and who is logged in.
import { h, replace, plural } from './dom.js';
import { api } from './api.js';
import { session, sessionReady, changes, setUser, isAdmin, clearCart, cartCount } from './store.js';
import * as shop from './shop.js';
import * as account from './account.js';

function adminView(name) {
  return async (root) => {
    await sessionReady;
    if (!isAdmin()) {
      replace(root, h('p', { class: 'note' }, 'This page is for the shop\'s staff. ', h('a', { href: '#/' }, 'Continue shopping')));
      return;
    }
    // Customers never download the admin code.
    const admin = await import('./admin.js');
    admin[name](root);
  };
}

const ROUTES = [
  [/^#?\/?$/, 'Catalogue', shop.catalogue],
  [/^#\/login$/, 'Log in or register', account.login],
  [/^#\/cart$/, 'Cart', shop.cartPage],
  [/^#\/purchases$/, 'My purchases', account.purchases],
  [/^#\/purchases\/(\d+)$/, 'Confirm your purchase', account.confirmPage],
  [/^#\/admin\/items$/, 'Items', adminView('items')],
  [/^#\/admin\/reports$/, 'Reports', adminView('reports')],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let firstRender = true;

function render() {
  const hash = location.hash || '#/';
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) { location.replace('#/'); return; }
  const [pattern, title, view] = route;
  document.title = `${title} · toko`;
  const heading = h('h1', { tabindex: '-1' }, title);
  const body = h('div', { class: 'view' });
  replace(main, heading, body);
  view(body, ...hash.match(pattern).slice(1));
  // Move focus to the new page's heading, as a page load would, so screen readers announce it.
  if (!firstRender) heading.focus();
  firstRender = false;
  renderNav();
}

function renderNav() {
  if (!session.known) return;
  const here = location.hash || '#/';
  const links = [['#/', 'Catalogue'], ['#/cart', 'Cart'], ['#/purchases', 'My purchases']];
  if (isAdmin()) links.push(['#/admin/items', 'Items'], ['#/admin/reports', 'Reports']);
  if (!session.user) links.push(['#/login', 'Log in']);
  const count = cartCount();
  replace(nav, h('ul', null, links.map(([href, text]) => h('li', null, h('a', {
    href,
    'aria-current': href === here ? 'page' : null,
    'aria-describedby': href === '#/cart' ? 'cart-count' : null,
  }, text, href === '#/cart' && count ? h('span', { class: 'badge', 'aria-hidden': 'true' }, String(count)) : null)))),
  h('span', { id: 'cart-count', class: 'sr' }, count ? `${plural(count, 'item')} in the cart` : 'The cart is empty'));
  replace(who, session.user ? [
    h('span', { class: 'user' }, h('span', { class: 'sr' }, 'Logged in as '), session.user.username),
    h('button', { type: 'button', class: 'ghost', onclick: logOut }, 'Log out'),
  ] : []);
}

async function logOut() {
  try { await api('DELETE', '/v1/sessions/current'); } catch { /* already gone: the page forgets it either way */ }
  clearCart();
  setUser(null);
  if ((location.hash || '#/') === '#/') render();
  else location.hash = '#/';
}

// The skip link moves focus without touching the hash, which the router owns.
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
changes.addEventListener('user', renderNav);
changes.addEventListener('cart', renderNav);
window.addEventListener('hashchange', render);
render();
