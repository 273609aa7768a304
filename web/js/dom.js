// Small DOM and formatting helpers. Text always goes in as text nodes, never as HTML, so names typed
// by users (items, usernames) cannot inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'value') el.value = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let counter = 0;
export const uid = (prefix) => `${prefix}-${++counter}`;

/** A labelled form field: the label names it for people, screen readers and tests alike. */
export function field(label, attrs = {}, hint) {
  const id = attrs.id || uid('f');
  const hintId = hint ? `${id}-hint` : null;
  const control = attrs.tag === 'select'
    ? h('select', { ...attrs, tag: null, id, options: null, 'aria-describedby': hintId },
      (attrs.options || []).map(([value, text]) => h('option', { value }, text)))
    : h(attrs.tag || 'input', { ...attrs, tag: null, id, 'aria-describedby': hintId });
  return {
    control,
    el: h('div', { class: 'field' }, h('label', { for: id }, label), control,
      hint ? h('small', { id: hintId, class: 'hint' }, hint) : null),
  };
}

/** Whole rupiah with dots between thousands: Rp 12.345. */
export function rupiah(amount) {
  const digits = String(Math.trunc(Number(amount) || 0));
  const sign = digits.startsWith('-') ? '-' : '';
  return `Rp ${sign}${digits.replace('-', '').replace(/\B(?=(\d{3})+(?!\d))/g, '.')}`;
}

const when = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
export const dateTime = (iso) => (iso ? when.format(new Date(iso)) : '');

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** Seconds as people say them: "45 seconds", "3 minutes". */
export function duration(seconds) {
  const s = Math.max(1, Math.ceil(Number(seconds)));
  if (s < 90) return plural(s, 'second');
  if (s < 5400) return plural(Math.ceil(s / 60), 'minute');
  return plural(Math.ceil(s / 3600), 'hour');
}

/** Tell the person something in a region that is a polite live region: errors go in as role=alert. */
export function say(region, text, kind = 'ok') {
  region.setAttribute('aria-live', 'polite');
  replace(region, text ? h('p', { class: `note ${kind}`, role: kind === 'error' ? 'alert' : null }, text) : null);
}

// What each of the contract's status words means to a person, shown beside the word itself.
const STATUS_WORDS = {
  paid: 'Paid', awaiting_otp: 'Waiting for your code', cancelled: 'Cancelled, money returned',
  expired: 'Expired, the code never came', queued: 'Waiting its turn', running: 'Being worked out',
  done: 'Ready', failed: 'Failed',
};

/** A status: the contract's word as the whole text of its own element, the words for people beside it. */
export function statusView(status) {
  const word = h('span', { class: 'status' });
  const words = h('span', { class: 'status-words' });
  const el = h('span', { class: 'state' }, words, ' ', word);
  const set = (value) => {
    word.textContent = value;
    word.className = `status s-${value}`;
    words.textContent = STATUS_WORDS[value] || '';
  };
  set(status);
  return { el, set };
}

export function busy(button, on) {
  button.disabled = on;
  button.setAttribute('aria-busy', on ? 'true' : 'false');
}
