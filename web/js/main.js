// The storefront's shell: the header, the hash router, and who is logged in.
import { h, replace, plural } from './dom.js';
import { api } from './api.js';
import { session, sessionReady, changes, setUser, isAdmin, clearCart, cartCount } from './store.js';
import * as shop from './shop.js';
import * as account from './account.js';

function adminView(name) {
  return async (root, context) => {
    await sessionReady;
    if (!isAdmin()) {
      replace(root, h('p', { class: 'note' }, 'This page is for the shop\'s staff. ', h('a', { href: '#/' }, 'Continue shopping')));
      return;
    }
    // Customers never download the admin code.
    const admin = await import('./admin.js');
    admin[name](root, context);
  };
}

// An address is `#/path?query`: the path picks the view, the query is the view's own state (the
// catalogue's search, filters and page), so that it can be shared, reloaded and reached with Back.
const ROUTES = [
  [/^\/$/, 'Catalogue', shop.catalogue],
  [/^\/items\/(\d+)$/, 'Item', shop.itemPage],
  [/^\/login$/, 'Log in or register', account.login],
  [/^\/cart$/, 'Cart', shop.cartPage],
  [/^\/purchases$/, 'My purchases', account.purchases],
  [/^\/purchases\/(\d+)$/, 'Confirm your purchase', account.confirmPage],
  [/^\/admin\/items$/, 'Items', adminView('items')],
  [/^\/admin\/reports$/, 'Reports', adminView('reports')],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const menu = document.getElementById('menu');
const menuToggle = document.getElementById('menu-toggle');
let firstRender = true;
let current = null;

function address() {
  const raw = (location.hash || '#/').slice(1);
  const at = raw.indexOf('?');
  const path = (at < 0 ? raw : raw.slice(0, at)) || '/';
  return { path, query: new URLSearchParams(at < 0 ? '' : raw.slice(at + 1)) };
}

function render() {
  const { path, query } = address();
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (!route) { location.replace('#/'); return; }
  const [pattern, title, view] = route;
  openMenu(false);
  renderNav();
  // Another page of the same view (a new search, the next page) is the view's to draw: the form keeps
  // its place and focus instead of being rebuilt.
  if (current && current.path === path && current.handle && current.handle.update) {
    current.handle.update(query);
    return;
  }
  document.title = `${title} · toko`;
  const heading = h('h1', { tabindex: '-1' }, title);
  const body = h('div', { class: 'view' });
  replace(main, heading, body);
  const handle = view(body, { query, args: path.match(pattern).slice(1), heading });
  current = { path, handle: handle instanceof Promise ? null : handle };
  // Move focus to the new page's heading, as a page load would, so screen readers announce it.
  if (!firstRender) heading.focus();
  firstRender = false;
}

// The links everyone gets are drawn at once; the ones that depend on the session join them at the end
// once it is known, so nothing already on screen moves.
function renderNav() {
  const here = `#${address().path}`;
  const links = [['#/', 'Catalogue'], ['#/cart', 'Cart'], ['#/purchases', 'My purchases']];
  if (isAdmin()) links.push(['#/admin/items', 'Items'], ['#/admin/reports', 'Reports']);
  if (session.known && !session.user) links.push(['#/login', 'Log in']);
  const count = cartCount();
  const badge = () => (count ? h('span', { class: 'badge', 'aria-hidden': 'true' }, count > 99 ? '99+' : String(count)) : null);
  replace(nav, h('ul', null, links.map(([href, text]) => h('li', null, h('a', {
    href,
    'aria-current': href === here ? 'page' : null,
    'aria-describedby': href === '#/cart' ? 'cart-count' : null,
  }, text, href === '#/cart' ? badge() : null)))),
  h('span', { id: 'cart-count', class: 'sr' }, count ? `${plural(count, 'item')} in the cart` : 'The cart is empty'));
  replace(menuToggle, 'Menu', badge());
  replace(who, session.user ? [
    h('span', { class: 'user' }, h('span', { class: 'sr' }, 'Logged in as '), session.user.username),
    h('button', { type: 'button', class: 'ghost', onclick: logOut }, 'Log out'),
  ] : []);
}

/** On a phone the header's links fold into one menu below the bar. */
function openMenu(open) {
  menuToggle.setAttribute('aria-expanded', String(open));
  menu.classList.toggle('open', open);
}

async function logOut() {
  try { await api('DELETE', '/v1/sessions/current'); } catch { /* already gone: the page forgets it either way */ }
  clearCart();
  setUser(null);
  current = null;
  if (address().path === '/') render();
  else location.hash = '#/';
}

// The skip link moves focus without touching the hash, which the router owns.
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
menuToggle.addEventListener('click', () => openMenu(menuToggle.getAttribute('aria-expanded') !== 'true'));
document.addEventListener('click', (event) => {
  if (menu.classList.contains('open') && !menu.contains(event.target) && !menuToggle.contains(event.target)) openMenu(false);
});
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && menu.classList.contains('open')) { openMenu(false); menuToggle.focus(); }
});
changes.addEventListener('user', renderNav);
changes.addEventListener('cart', renderNav);
window.addEventListener('hashchange', render);
render();
