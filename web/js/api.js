// The one door to the API: same origin, so the HttpOnly session cookie set by POST /v1/sessions rides
// along and the page never touches the token. Every failure becomes an ApiError that `explain` puts in words.
import { duration, plural } from './dom.js';

export class ApiError extends Error {
  constructor(status, code, message, details = {}, retryAfter = null, requestId = null) {
    super(message);
    Object.assign(this, { status, code, details, retryAfter, requestId });
  }
}

export async function api(method, path, { body, query, headers } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== '' && value !== null && value !== undefined) params.set(key, value);
    }
    if ([...params].length) url += `?${params}`;
  }
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, 'network', 'The shop could not be reached. Check your connection and try again.');
  }
  let payload = null;
  if ((response.headers.get('Content-Type') || '').includes('json')) {
    try { payload = await response.json(); } catch { payload = null; }
  }
  if (response.ok) return payload || {};
  if (response.status === 401) window.dispatchEvent(new Event('toko:unauthorized'));
  const error = (payload && payload.error) || {};
  const retryAfter = Number(response.headers.get('Retry-After')) || (error.details || {}).retry_after || null;
  throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || '',
    error.details || {}, retryAfter, response.headers.get('X-Request-ID'));
}

const FIELD_NAMES = {
  username: 'Username', password: 'Password', email: 'Email', phone: 'Phone', sku: 'SKU', name: 'Name',
  price: 'Price', stock: 'Stock', category_id: 'Category', description: 'Description', code: 'Code',
  q: 'Search', min_price: 'Min price', max_price: 'Max price', from: 'From', to: 'To', group_by: 'Group by',
  lines: 'Cart', quantity: 'Quantity',
};

function fieldProblems(fields) {
  const out = [];
  const walk = (name, value) => {
    if (Array.isArray(value)) out.push(`${FIELD_NAMES[name] || name}: ${value.join(' ')}`);
    else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(isNaN(k) ? k : name, v);
  };
  for (const [name, value] of Object.entries(fields || {})) walk(name, value);
  return out.join(' ');
}

/** The error in words a shopper understands; never the raw JSON. */
export function explain(error) {
  if (!(error instanceof ApiError)) return 'Something went wrong on this page. Please reload it and try again.';
  const wait = error.retryAfter ? `Please wait ${duration(error.retryAfter)} and try again.` : 'Please try again later.';
  const d = error.details || {};
  switch (error.code) {
    case 'network': return error.message;
    case 'invalid_credentials': return 'Wrong username or password.';
    case 'login_throttled': return `Too many failed log-ins. ${wait}`;
    case 'registration_throttled': return `Too many accounts were made from here. ${wait}`;
    case 'last_admin': return 'This is the shop\'s last admin: make another admin first.';
    case 'too_many_jobs': return `You already have several reports being worked out. ${wait}`;
    case 'already_exists': return {
      username: 'That username is already registered. Choose another or log in.',
      email: 'That email is already registered. Choose another or log in.',
      sku: 'That SKU is taken: another item in the catalogue has it. Choose another SKU.',
      name: 'A category with that name already exists. Choose another name.',
    }[d.field] || 'That is already taken. Choose another.';
    case 'invalid_cursor': return 'That page of results is out of date or was cut short.';
    case 'idempotency_key_reused': return 'Your cart changed while the last checkout was still open. Check it and try again.';
    case 'otp_mismatch': return 'That code belongs to another purchase. Ask for a new code here.';
    case 'otp_not_verified': return 'The code has not been checked yet. Type it again and confirm.';
    case 'invalid_window': return 'The first day must come before the last one.';
    case 'window_too_large': return `${error.message || 'That window is too long for one report.'} Choose fewer days.`;
    case 'insufficient_stock': return 'There is not enough stock for your order, so nothing was bought.';
    case 'unknown_item': return 'Some items in your cart are no longer sold. Remove them and try again.';
    case 'idempotency_in_flight': return 'Your checkout is still being processed. Wait a moment and look in My purchases.';
    case 'otp_invalid': return d.attempts_left
      ? `That code is not right. ${plural(d.attempts_left, 'attempt')} left.`
      : 'That code is not right, and it is now locked. Ask for a new code.';
    case 'otp_locked': return `Too many wrong codes: this one is locked. Ask for a new code${error.retryAfter ? ` in ${duration(error.retryAfter)}` : ''}.`;
    case 'otp_throttled': return `Too many codes were requested. ${wait}`;
    case 'otp_expired': return 'That code has expired. Ask for a new one.';
    case 'otp_replaced': return 'A newer code replaced that one. Use the newest code.';
    case 'otp_used': return 'That code was already used.';
    case 'transaction_expired': return 'This purchase waited too long for its code and has expired; its items went back on the shelf.';
    case 'transaction_not_awaiting_otp': return `This purchase is ${d.status || 'no longer waiting for a code'}.`;
    case 'transaction_not_cancellable': return `This purchase is ${d.status || 'closed'} and can no longer be cancelled.`;
    case 'report_not_ready': return `The report is ${d.status || 'not ready'} yet.`;
    default: break;
  }
  const problems = fieldProblems(d.fields);
  switch (error.status) {
    case 400: case 405: case 406: case 411: case 412: case 414: case 415: case 416: case 428: case 431:
      return 'The shop could not handle that request. Please reload the page and try again.';
    case 401: return 'Please log in first.';
    case 403: return 'Your account is not allowed to do that.';
    case 404: return 'That was not found. It may have been removed.';
    case 409: return error.message || 'That clashes with what is already there.';
    case 410: return 'That has expired.';
    case 413: return 'That is too large to send.';
    case 422: return problems ? `Please check: ${problems}` : (error.message || 'Please check what you entered.');
    case 429: return `Too many attempts. ${wait}`;
    default: break;
  }
  if (error.status >= 500) {
    const ref = error.requestId ? ` (reference ${error.requestId})` : '';
    return `The shop is having trouble right now. ${wait}${ref}`;
  }
  return error.message || 'The request could not be completed.';
}

/** Whole-rupiah amount of a v2 money object or a v1 integer. */
export const amount = (money) => (money && typeof money === 'object' ? money.amount : money);
