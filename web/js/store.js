// What the page remembers: who is logged in (asked from the API, never from the cookie, which is
// HttpOnly) and the cart (this browser's localStorage). Views listen on `changes` to redraw.
import { api } from './api.js';

export const changes = new EventTarget();
export const session = { user: null, known: false };

export function setUser(user) {
  session.user = user;
  session.known = true;
  changes.dispatchEvent(new Event('user'));
}

/** Settled once the API said who this browser's session cookie belongs to (or that there is none). */
export const sessionReady = api('GET', '/v1/sessions/current').then(({ data }) => setUser(data.user), () => setUser(null));

// A request refused for want of a session means the session ended (expired, logged out elsewhere).
window.addEventListener('toko:unauthorized', () => { if (session.user) setUser(null); });

export const isAdmin = () => session.user?.role === 'admin';

const CART_KEY = 'toko.cart';

function loadCart() {
  try {
    const lines = JSON.parse(localStorage.getItem(CART_KEY) || '[]');
    return Array.isArray(lines) ? lines.filter((l) => Number.isInteger(l.id) && l.quantity > 0) : [];
  } catch {
    return [];
  }
}

export const cart = { lines: loadCart() };

function saveCart() {
  try { localStorage.setItem(CART_KEY, JSON.stringify(cart.lines)); } catch { /* private mode: memory only */ }
  changes.dispatchEvent(new Event('cart'));
}

/** Remember an item as the catalogue showed it (name and price are for display; the API prices the sale). */
export function addToCart(item, quantity = 1) {
  const line = cart.lines.find((l) => l.id === item.id);
  if (line) line.quantity += quantity;
  else cart.lines.push({ id: item.id, name: item.name, price: item.price.amount, stock: item.stock, quantity });
  saveCart();
}

export function setQuantity(id, quantity) {
  const line = cart.lines.find((l) => l.id === id);
  if (line) { line.quantity = quantity; saveCart(); }
}

export function setStock(id, stock) {
  const line = cart.lines.find((l) => l.id === id);
  if (line) { line.stock = stock; saveCart(); }
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
