// What the page remembers: who is logged in (asked from the API, never from the cookie, which is
// HttpOnly) and the cart (this browser's localStorage). Views listen on `changes` to redraw.
import { api } from './api.js';

export const changes = new EventTarget();
export const session = { user: null, known: false };

// Whether this browser was logged in when it last knew. The API answers "no session" with a 401, which
// browsers log as an error on every visit: a visitor who never logged in here is not asked about.
const SIGNED_IN_KEY = 'toko.signed-in';
const signedIn = () => { try { return localStorage.getItem(SIGNED_IN_KEY) === '1'; } catch { return true; } };

export function setUser(user) {
  session.user = user;
  session.known = true;
  try {
    if (user) localStorage.setItem(SIGNED_IN_KEY, '1');
    else localStorage.removeItem(SIGNED_IN_KEY);
  } catch { /* private mode: the session is asked about on every visit */ }
  changes.dispatchEvent(new Event('user'));
}

const askSession = () => api('GET', '/v1/sessions/current').then(({ data }) => setUser(data.user), () => setUser(null));

/** Settled once the API said who this browser's session cookie belongs to (or that there is none). */
export const sessionReady = signedIn() ? askSession() : Promise.resolve().then(() => setUser(null));

// Logged in or out in another tab: this one asks again.
window.addEventListener('storage', (event) => {
  if (event.key === SIGNED_IN_KEY && Boolean(event.newValue) !== Boolean(session.user)) askSession();
});

// A request refused for want of a session means the session ended (expired, logged out elsewhere).
window.addEventListener('toko:unauthorized', () => { if (session.user) setUser(null); });

export const isAdmin = () => session.user?.role === 'admin';

const CART_KEY = 'toko.cart';

function loadCart() {
  try {
    const lines = JSON.parse(localStorage.getItem(CART_KEY) || '[]');
    // Whatever another tab or an older page left there, a line is a whole number of items the shelf had.
    return Array.isArray(lines) ? lines.filter((l) => l && Number.isInteger(l.id) && Number.isSafeInteger(l.quantity)
      && l.quantity > 0 && Number.isSafeInteger(l.stock) && Number.isSafeInteger(l.price))
      .map((l) => ({ ...l, quantity: Math.min(l.quantity, Math.max(l.stock, 1)) })) : [];
  } catch {
    return [];
  }
}

export const cart = { lines: loadCart() };

function saveCart() {
  try { localStorage.setItem(CART_KEY, JSON.stringify(cart.lines)); } catch { /* private mode: memory only */ }
  changes.dispatchEvent(new Event('cart'));
}

/** Remember an item as the page showed it (name and price are for display; the API prices the sale).
 * The line never holds more than the stock shown: the answer is how many were added (0 when the cart
 * already holds them all). */
export function addToCart(item, quantity = 1) {
  let line = cart.lines.find((l) => l.id === item.id);
  if (!line) {
    line = { id: item.id, name: item.name, price: item.price.amount, stock: item.stock, quantity: 0 };
    cart.lines.push(line);
  }
  Object.assign(line, { name: item.name, price: item.price.amount, stock: item.stock });
  const before = line.quantity;
  line.quantity = Math.min(before + quantity, item.stock);
  if (line.quantity <= 0) cart.lines = cart.lines.filter((l) => l !== line);
  saveCart();
  return Math.max(line.quantity - before, 0);
}

export const inCart = (id) => cart.lines.find((l) => l.id === id)?.quantity || 0;

/** Set a line's quantity, at most the stock the page knows of; the answer is the quantity kept. */
export function setQuantity(id, quantity) {
  const line = cart.lines.find((l) => l.id === id);
  if (!line) return 0;
  line.quantity = Math.max(1, Math.min(quantity, line.stock));
  saveCart();
  return line.quantity;
}

/** The shelf as the API last said: a line never asks for more than the stock (a sold-out line stays, marked). */
export function setStock(id, stock) {
  const line = cart.lines.find((l) => l.id === id);
  if (!line) return;
  line.stock = stock;
  if (stock > 0) line.quantity = Math.min(line.quantity, stock);
  saveCart();
}

/** A line's name, price and stock as the catalogue shows them now. */
export function refreshLine(item) {
  const line = cart.lines.find((l) => l.id === item.id);
  if (!line) return;
  Object.assign(line, { name: item.name, price: item.price.amount });
  setStock(item.id, item.stock);
}

export function removeLine(id) {
  cart.lines = cart.lines.filter((l) => l.id !== id);
  saveCart();
}

export function clearCart() {
  cart.lines = [];
  saveCart();
}

export const cartCount = () => cart.lines.reduce((n, l) => n + l.quantity, 0);
export const cartTotal = () => cart.lines.reduce((n, l) => n + l.quantity * l.price, 0);

// Names of items seen anywhere, so purchase lines (which carry only item ids) read as names.
export const itemNames = new Map();

window.addEventListener('storage', (event) => {
  if (event.key === CART_KEY) { cart.lines = loadCart(); changes.dispatchEvent(new Event('cart')); }
});
