// Block Kit and mrkdwn, rendered to DOM the way Slack's clients show them.
// Supported: header, section (text, fields, accessory), context, divider,
// actions, input, image; buttons (style, confirm), static/external selects,
// overflow menus, radio buttons, plain-text inputs. Anything else shows as
// an "unsupported" note rather than vanishing, so a bad message is visible.

import { EMOJI, emojify } from "./emoji.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "html") el.innerHTML = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);
// Slack escapes only these three in message text; everything else is literal.
const unslack = (s) => String(s).replace(/&(amp|lt|gt);/g, (_, e) => ({ amp: "&", lt: "<", gt: ">" })[e]);


// --- dates: <!date^1700000000^{date_short_pretty} {time}|fallback> ---------------

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
  "September", "October", "November", "December"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const ordinal = (n) => n + ((n % 100 >= 11 && n % 100 <= 13) ? "th" : ["th", "st", "nd", "rd"][n % 10] || "th");

function ago(seconds) {
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  const abs = Math.abs(seconds);
  for (const [name, size] of units) {
    if (abs >= size) {
      const n = Math.round(abs / size);
      const text = `${n} ${name}${n === 1 ? "" : "s"}`;
      return seconds >= 0 ? `${text} ago` : `in ${text}`;
    }
  }
  return seconds >= 0 ? "just now" : "in a moment";
}

export function formatDate(epoch, format, now) {
  const d = new Date(epoch * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  const dayDiff = Math.round((new Date(d).setHours(0, 0, 0, 0) - new Date(now).setHours(0, 0, 0, 0)) / 86400000);
  const pretty = (fallback) => ({ 0: "today", [-1]: "yesterday", 1: "tomorrow" })[dayDiff] ?? fallback;
  const hours12 = d.getHours() % 12 || 12, ampm = d.getHours() < 12 ? "AM" : "PM";
  const date = `${MONTHS[d.getMonth()]} ${ordinal(d.getDate())}, ${d.getFullYear()}`;
  const short = `${MONTHS[d.getMonth()].slice(0, 3)} ${d.getDate()}, ${d.getFullYear()}`;
  const long = `${DAYS[d.getDay()]}, ${date}`;
  const tokens = {
    date_num: `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
    date, date_short: short, date_long: long,
    date_pretty: pretty(date), date_short_pretty: pretty(short), date_long_pretty: pretty(long),
    time: `${hours12}:${pad(d.getMinutes())} ${ampm}`,
    time_secs: `${hours12}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${ampm}`,
    ago: ago((now - d.getTime()) / 1000),
  };
  return format.replace(/\{(\w+)\}/g, (m, name) => tokens[name] ?? m);
}

// --- mrkdwn ---------------------------------------------------------------------

function control(inner, ctx) {
  const [target, label] = inner.split(/\|(.*)/s);
  const text = (s) => esc(unslack(s));
  if (target.startsWith("@")) {
    const id = target.slice(1);
    const name = ctx.userName(id) ?? (label || id);
    const me = id === ctx.me ? " mention-me" : "";
    return `<span class="mention${me}" data-user="${esc(id)}">@${text(name)}</span>`;
  }
  if (target.startsWith("#")) return `<span class="mention">#${text(label || ctx.channelName(target.slice(1)) || target.slice(1))}</span>`;
  if (target.startsWith("!date^")) {
    const [, epoch, format] = target.split("^");
    return `<time title="${text(label || "")}">${text(formatDate(Number(epoch), unslack(format || "{date}"), ctx.now()))}</time>`;
  }
  if (target.startsWith("!subteam^")) {
    // As Slack shows a user group mention: its @handle, highlighted for members.
    const id = target.split("^")[1];
    const handle = ctx.groupHandle?.(id) ?? (label ? unslack(label).replace(/^@/, "") : id);
    const me = ctx.inGroup?.(id) ? " mention-me" : "";
    return `<span class="mention${me}" data-group="${esc(id)}">@${text(handle)}</span>`;
  }
  if (target.startsWith("!")) return `<span class="mention">@${text(target.slice(1))}</span>`;
  if (/^(https?:|mailto:)/.test(target)) {
    return `<a href="${esc(unslack(target))}" target="_blank" rel="noopener noreferrer">${text(label || target)}</a>`;
  }
  return text(inner);
}

export function mrkdwn(source, ctx) {
  const slots = [];
  const keep = (html) => `\u0001${slots.push(html) - 1}\u0002`;
  let s = String(source ?? "");
  // A raw "<" only ever opens a control sequence: Slack has the sender escape a literal one.
  s = s.replace(/<([^<>\n]+)>/g, (_, inner) => keep(control(inner, ctx)));
  s = s.replace(/```([\s\S]*?)```/g, (_, code) => keep(`<pre>${esc(unslack(code))}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${esc(unslack(code))}</code>`));
  s = esc(unslack(s));
  s = s.replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] ?? m);
  s = s.replace(/(^|[^\w*])\*(?!\s)([^*\n]+?)\*(?!\w)/gm, "$1<b>$2</b>");
  s = s.replace(/(^|[^\w])_(?!\s)([^_\n]+?)_(?!\w)/gm, "$1<i>$2</i>");
  s = s.replace(/(^|[^\w~])~(?!\s)([^~\n]+?)~(?!\w)/gm, "$1<s>$2</s>");
  // "> " at a line's start quotes it; consecutive quoted lines make one quote.
  const out = [];
  let quote = null;
  for (const line of s.split("\n")) {
    const m = line.match(/^&gt; ?(.*)$/);
    if (m) (quote ??= []).push(m[1]);
    else {
      if (quote) out.push(`<blockquote>${quote.join("<br>")}</blockquote>`), (quote = null);
      out.push(line + "<br>");
    }
  }
  if (quote) out.push(`<blockquote>${quote.join("<br>")}</blockquote>`);
  s = out.join("").replace(/<br>$/, "");
  return s.replace(/\u0001(\d+)\u0002/g, (_, i) => slots[Number(i)]);
}

export function textObject(obj, ctx, cls = "") {
  if (!obj) return null;
  const html = obj.type === "mrkdwn" ? mrkdwn(obj.text, ctx) : esc(obj.text).replace(/:([a-z0-9_+-]+):/g, (m, n) => (obj.emoji !== false && EMOJI[n]) || m);
  return h("span", { class: `bk-text ${cls}`, html });
}

const plain = (obj) => (obj ? String(obj.text ?? "") : "");

// --- elements --------------------------------------------------------------------

function option(opt) {
  return { text: opt.text, value: opt.value };
}

function selectOptions(el) {
  if (el.option_groups) return el.option_groups.flatMap((g) => g.options.map((o) => ({ ...o, group: plain(g.label) })));
  return el.options || [];
}

function buttonEl(el, ctx, blockId) {
  const style = el.style ? ` bk-btn-${el.style}` : "";
  return h("button", {
    class: `bk-btn${style}`, type: "button", "data-action-id": el.action_id, "data-testid": "block-button",
    onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        if (el.confirm && !(await ctx.confirm(el.confirm))) return;
        await ctx.act({ type: "button", action_id: el.action_id, block_id: blockId, value: el.value, text: el.text, style: el.style });
      } finally { ev.target.disabled = false; }
    },
  }, el.text?.emoji === false ? plain(el.text) : emojify(plain(el.text)));
}

function selectEl(el, ctx, blockId, { input = false } = {}) {
  const opts = selectOptions(el);
  const select = h("select", { class: "bk-select", "data-action-id": el.action_id, "aria-label": plain(el.placeholder) || el.action_id });
  select.append(h("option", { value: "", disabled: true, selected: !el.initial_option }, plain(el.placeholder) || "Select an item"));
  let group = null, parent = select;
  for (const opt of opts) {
    if (opt.group !== undefined && opt.group !== group) parent = select.appendChild(h("optgroup", { label: (group = opt.group) }));
    parent.append(h("option", { value: opt.value, selected: el.initial_option?.value === opt.value }, plain(opt.text)));
  }
  const chosen = () => { const o = opts.find((x) => x.value === select.value); return o ? option(o) : null; };
  if (input) {
    select.collect = () => ({ type: el.type, selected_option: chosen() });
  } else {
    select.addEventListener("change", async () => {
      const opt = chosen(), selected = opt && (!el.confirm || (await ctx.confirm(el.confirm)));
      if (selected) await ctx.act({ type: el.type, action_id: el.action_id, block_id: blockId, selected_option: opt });
    });
  }
  return select;
}

// external_select: a text box whose suggestions come from the app (block_suggestion).
function externalSelectEl(el, ctx, blockId) {
  const listId = `dl-${blockId}-${el.action_id}`.replace(/[^\w-]/g, "_");
  const list = h("datalist", { id: listId });
  let found = [];
  const box = h("input", {
    class: "bk-input", list: listId, "data-action-id": el.action_id, value: el.initial_option ? plain(el.initial_option.text) : "",
    placeholder: plain(el.placeholder), "aria-label": plain(el.placeholder) || el.action_id,
    oninput: async () => {
      if (box.value.length < (el.min_query_length ?? 3)) return;
      found = await ctx.options({ block_id: blockId, action_id: el.action_id, value: box.value });
      list.replaceChildren(...found.map((o) => h("option", { value: o.value }, plain(o.text))));
    },
  });
  const wrap = h("span", {}, box, list);
  wrap.collect = () => {
    const typed = box.value.trim();
    const o = found.find((x) => x.value === typed || plain(x.text) === typed);
    return { type: "external_select", selected_option: o ? option(o) : typed ? { text: { type: "plain_text", text: typed }, value: typed } : null };
  };
  return wrap;
}

function overflowEl(el, ctx, blockId) {
  const menu = h("div", { class: "bk-menu", hidden: true });
  for (const opt of el.options || []) {
    menu.append(h("button", { type: "button", onclick: async () => {
      menu.hidden = true;
      if (el.confirm && !(await ctx.confirm(el.confirm))) return;
      await ctx.act({ type: "overflow", action_id: el.action_id, block_id: blockId, selected_option: option(opt) });
    } }, plain(opt.text)));
  }
  return h("span", { class: "bk-overflow" },
    h("button", { class: "bk-btn", type: "button", "aria-label": "More actions", onclick: () => (menu.hidden = !menu.hidden) }, "⋯"), menu);
}

function radioEl(el, ctx, blockId) {
  const name = `r-${blockId}-${el.action_id}-${Math.random().toString(36).slice(2)}`;
  const wrap = h("div", { class: "bk-radios", role: "radiogroup" });
  for (const opt of el.options || []) {
    wrap.append(h("label", { class: "bk-radio" },
      h("input", { type: "radio", name, value: opt.value, checked: el.initial_option?.value === opt.value }),
      h("span", {}, textObject(opt.text, ctx), opt.description ? h("small", {}, textObject(opt.description, ctx)) : null)));
  }
  wrap.collect = () => {
    const checked = wrap.querySelector("input:checked");
    const o = (el.options || []).find((x) => x.value === checked?.value);
    return { type: "radio_buttons", selected_option: o ? option(o) : null };
  };
  return wrap;
}

function textInputEl(el) {
  const attrs = { class: "bk-input", "data-action-id": el.action_id, placeholder: plain(el.placeholder), maxlength: el.max_length, "aria-label": el.action_id };
  const box = el.multiline ? h("textarea", { ...attrs, rows: 3 }) : h("input", { ...attrs, type: "text" });
  box.value = el.initial_value ?? "";
  box.collect = () => ({ type: "plain_text_input", value: box.value });
  return box;
}

// Slack's datetimepicker sends the instant picked on the person's own clock
// as a UNIX time (selected_date_time); the browser's local time is that clock.
function dateTimeEl(el) {
  const box = h("input", { class: "bk-input", type: "datetime-local", "data-action-id": el.action_id, "aria-label": el.action_id });
  box.collect = () => ({
    type: "datetimepicker",
    selected_date_time: box.value ? Math.floor(new Date(box.value).getTime() / 1000) : null,
  });
  return box;
}

export function element(el, ctx, blockId, opts = {}) {
  switch (el.type) {
    case "button": return buttonEl(el, ctx, blockId);
    case "static_select": return selectEl(el, ctx, blockId, opts);
    case "external_select": return opts.input ? externalSelectEl(el, ctx, blockId) : selectEl(el, ctx, blockId, opts);
    case "overflow": return overflowEl(el, ctx, blockId);
    case "radio_buttons": return radioEl(el, ctx, blockId);
    case "plain_text_input": return textInputEl(el);
    case "datetimepicker": return dateTimeEl(el);
    case "image": return h("span", { class: "bk-image", title: el.alt_text }, "🖼");
    case "mrkdwn": case "plain_text": return textObject(el, ctx);
    default: return h("span", { class: "bk-unsupported" }, `[unsupported element: ${el.type}]`);
  }
}

// --- blocks ------------------------------------------------------------------------

export function block(b, ctx, index) {
  const blockId = b.block_id ?? `b${index}`;
  switch (b.type) {
    case "header": return h("h3", { class: "bk-header" }, textObject(b.text, ctx));
    case "divider": return h("hr", { class: "bk-divider" });
    case "section": {
      const body = h("div", { class: "bk-section-body" },
        b.text ? h("div", { class: "bk-section-text" }, textObject(b.text, ctx)) : null,
        b.fields ? h("div", { class: "bk-fields" }, b.fields.map((f) => h("div", { class: "bk-field" }, textObject(f, ctx)))) : null);
      return h("div", { class: "bk-section", "data-block-id": blockId }, body,
        b.accessory ? h("div", { class: "bk-accessory" }, element(b.accessory, ctx, blockId)) : null);
    }
    case "context":
      return h("div", { class: "bk-context" }, (b.elements || []).map((e) => element(e, ctx, blockId)));
    case "actions":
      return h("div", { class: "bk-actions", "data-block-id": blockId }, (b.elements || []).map((e) => element(e, ctx, blockId)));
    case "input": {
      const field = element(b.element, ctx, blockId, { input: true });
      ctx.inputs?.push({ blockId, actionId: b.element.action_id, field });
      // The block's label names its field, for screen readers (and tests).
      const named = field.matches("input, select, textarea, [role=radiogroup]") ? field : field.querySelector("input, select, textarea");
      named?.setAttribute("aria-label", plain(b.label));
      return h("div", { class: "bk-input-block", "data-block-id": blockId },
        h("label", { class: "bk-label" }, plain(b.label), b.optional ? h("span", { class: "bk-optional" }, " (optional)") : null),
        field,
        b.hint ? h("div", { class: "bk-hint" }, plain(b.hint)) : null,
        h("div", { class: "bk-error", "data-testid": "modal-error", hidden: true }));
    }
    case "image": return h("div", { class: "bk-image" }, `🖼 ${b.alt_text ?? ""}`);
    default: return h("div", { class: "bk-unsupported" }, `[unsupported block: ${b.type}]`);
  }
}

export function blocks(list, ctx) {
  return h("div", { class: "bk-blocks" }, (list || []).map((b, i) => block(b, ctx, i)));
}
