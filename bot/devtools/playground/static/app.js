// The playground's browser face: one person's view of the demo workspace.
// State comes from /ui/state (long-polled); everything a person does goes
// to /ui/<verb>, which the playground turns into a signed Slack request.
import { blocks, h, mrkdwn } from "./blocks.js";

const ui = {
  me: new URLSearchParams(location.search).get("user") || localStorage.getItem("me") || "U0ALICE",
  place: { kind: "channel", id: "C0OPS" }, // or { kind: "app", tab: "home" | "messages" }
  thread: null, // { channel, ts }
  state: null,
  version: -1,
  receivedAt: 0,
  abort: null,
  modalKey: null,
};
const $ = (id) => document.getElementById(id);
const SUGGESTIONS = [
  '/checkpoint create WEB01 --reason "KB5044284 cumulative update"',
  '/checkpoint create CORP-DC01 --reason "monthly patching"',
  "/checkpoint list",
  "/checkpoint help",
  "/hyperv migrate WEB02 HV01",
];

async function post(verb, data) {
  const response = await fetch(`/ui/${verb}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: ui.me, ...data }),
  });
  return response.json();
}

// --- the rendering context blocks.js calls back into ----------------------------

function renderContext(act) {
  const users = Object.fromEntries((ui.state?.users || []).map((u) => [u.id, u.name]));
  users[ui.state?.bot.id] = ui.state?.bot.name;
  const channels = Object.fromEntries((ui.state?.channels || []).map((c) => [c.id, c.name]));
  const groups = Object.fromEntries((ui.state?.usergroups || []).map((g) => [g.id, g]));
  return {
    me: ui.me,
    userName: (id) => users[id],
    channelName: (id) => channels[id],
    groupHandle: (id) => groups[id]?.handle,
    inGroup: (id) => (groups[id]?.users || []).includes(ui.me),
    now: botNow,
    confirm,
    act,
    options: async (data) => (await post("options", { ...data, view_id: ui.state?.modal?.id })).options,
  };
}

// The bot's clock runs `--speed` times faster than real time; dates it
// sends ("expires tomorrow") are read against it.
function botNow() {
  const clock = ui.state?.clock;
  if (!clock) return Date.now();
  return clock.now * 1000 + (Date.now() - ui.receivedAt) * clock.speed;
}

// --- confirm dialogs ---------------------------------------------------------------

function confirm(dialog) {
  return new Promise((resolve) => {
    const root = $("dialog-root");
    const done = (answer) => { root.replaceChildren(); resolve(answer); };
    const style = dialog.style === "danger" ? "bk-btn-danger" : "bk-btn-primary";
    root.replaceChildren(h("div", { class: "overlay" },
      h("div", { class: "dialog", role: "dialog", "aria-modal": "true", "data-testid": "confirm-dialog", "aria-label": dialog.title?.text },
        h("h2", {}, dialog.title?.text ?? "Are you sure?"),
        h("p", { html: dialog.text?.type === "mrkdwn" ? mrkdwn(dialog.text.text, renderContext()) : "" }, dialog.text?.type === "mrkdwn" ? null : dialog.text?.text),
        h("div", { class: "dialog-buttons" },
          h("button", { type: "button", class: "bk-btn", "data-testid": "confirm-deny", onclick: () => done(false) }, dialog.deny?.text ?? "Cancel"),
          h("button", { type: "button", class: `bk-btn ${style}`, "data-testid": "confirm-ok", onclick: () => done(true) }, dialog.confirm?.text ?? "Yes")))));
  });
}

// --- messages ----------------------------------------------------------------------

const avatarColor = (id) => `hsl(${[...id].reduce((a, c) => a + c.charCodeAt(0), 0) * 47 % 360} 45% 45%)`;

function author(id) {
  if (id === ui.state.bot.id) return { name: ui.state.bot.name, app: true, initial: "🤖" };
  if (id === "USLACKBOT") return { name: "Slackbot", app: true, initial: "💬" };
  const user = ui.state.users.find((u) => u.id === id);
  return { name: user?.name ?? id, initial: (user?.name ?? "?")[0].toUpperCase() };
}

const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;

function timeOf(ts) {
  return new Date(Number(ts) * 1000).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}

function messageEl(m, channel, { inThread = false } = {}) {
  const who = author(m.user);
  const ctx = renderContext((action) => post("action", { channel, ts: m.ts, action }));
  const replies = inThread ? [] : ui.state.messages[channel].filter((r) => r.thread_ts === m.ts && !r.ephemeral);
  const body = m.blocks?.length ? blocks(m.blocks, ctx) : h("div", { class: "msg-text", html: mrkdwn(m.text, ctx) });
  return h("div", {
    class: `msg${m.ephemeral ? " ephemeral" : ""}`, "data-testid": m.ephemeral ? "ephemeral" : "message",
    "data-ts": m.ts, "data-user": m.user,
  },
  h("div", { class: "avatar", style: `background:${who.app ? "#4a154b" : avatarColor(m.user)}` }, who.initial),
  h("div", { class: "msg-body" },
    m.note ? h("div", { class: "msg-note" }, m.note) : null,
    h("div", { class: "msg-meta" },
      h("b", {}, who.name), who.app ? h("span", { class: "app-badge" }, "APP") : null,
      h("time", {}, timeOf(m.ts)), m.edited ? h("span", { class: "edited" }, "(edited)") : null),
    body,
    m.ephemeral ? h("div", { class: "only-you" }, "👁 Only visible to you · ",
      h("button", { type: "button", class: "link", "data-testid": "dismiss", onclick: () => post("dismiss", { channel, ts: m.ts }) }, "Dismiss message")) : null,
    replies.length ? h("button", {
      type: "button", class: "replies", "data-testid": "open-thread",
      onclick: () => { ui.thread = { channel, ts: m.ts }; render(); },
    }, count(replies.length, "reply", "replies")) : null));
}

function messageList(channel, items, { inThread = false } = {}) {
  const list = h("div", { class: "messages", "data-testid": inThread ? "thread-messages" : "channel-messages" },
    items.map((m) => messageEl(m, channel, { inThread })));
  return list;
}

function keepScrolled(container, render) {
  const atBottom = !container.firstChild || container.scrollHeight - container.scrollTop - container.clientHeight < 80;
  render();
  if (atBottom) container.scrollTop = container.scrollHeight;
}

// --- the panes ---------------------------------------------------------------------

// One composer per channel, kept across re-renders, so what is being typed
// survives the bot's live updates.
const composers = new Map();

function composer(channel, name) {
  if (!composers.has(channel)) composers.set(channel, newComposer(channel, name));
  return composers.get(channel);
}

function newComposer(channel, name) {
  const input = h("input", {
    type: "text", class: "composer-input", "data-testid": "composer", "aria-label": "Message",
    placeholder: `Message ${name} — try /checkpoint help`, autocomplete: "off",
  });
  const send = async () => {
    const text = input.value;
    input.value = "";
    if (text.trim()) await post("command", { channel, text });
  };
  input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") send(); });
  return h("div", { class: "composer" },
    h("div", { class: "composer-row" }, input, h("button", { type: "button", class: "bk-btn bk-btn-primary", "data-testid": "composer-send", onclick: send }, "Send")),
    h("div", { class: "suggestions" }, "Try: ", SUGGESTIONS.map((s) =>
      h("button", { type: "button", class: "chip", onclick: () => { input.value = s; input.focus(); } }, s))));
}

function channelPane(channel) {
  const info = ui.state.channels.find((c) => c.id === channel);
  const top = ui.state.messages[channel].filter((m) => !m.thread_ts);
  const name = info.is_im ? info.name : `#${info.name}`;
  return [
    h("div", { class: "pane-header" }, h("h1", {}, name)),
    messageList(channel, top),
    composer(channel, name),
  ];
}

function appPane() {
  const tab = ui.place.tab;
  const dm = ui.state.channels.find((c) => c.is_im);
  const tabs = h("div", { class: "tabs", role: "tablist" },
    ["home", "messages"].map((t) => h("button", {
      type: "button", role: "tab", "aria-selected": String(tab === t), "data-testid": `tab-${t}`,
      onclick: () => openApp(t),
    }, t === "home" ? "Home" : "Messages")));
  const header = h("div", { class: "pane-header" }, h("h1", {}, "🤖 checkpoint-bot"), tabs);
  if (tab === "messages") return [header, ...channelPane(dm.id).slice(1)];
  const home = ui.state.home;
  const ctx = renderContext((action) => post("action", { view_id: home.id, action }));
  return [header, h("div", { class: "home", "data-testid": "home-view" },
    home ? blocks(home.blocks, ctx) : h("p", { class: "muted" }, "Opening the App Home…"))];
}

function threadPane() {
  const pane = $("thread");
  const { channel, ts } = ui.thread || {};
  const all = ui.thread ? ui.state.messages[channel] || [] : [];
  const root = all.find((m) => m.ts === ts);
  pane.hidden = !root;
  // On a narrow window the open thread takes the whole width (style.css).
  $("app").classList.toggle("thread-open", Boolean(root));
  if (!root) { ui.thread = null; return; }
  const replies = all.filter((m) => m.thread_ts === ts);
  const name = ui.state.channels.find((c) => c.id === channel)?.name;
  keepScrolled(pane, () => pane.replaceChildren(
    h("div", { class: "pane-header" }, h("h2", {}, "Thread ", h("small", {}, `#${name}`)),
      h("button", { type: "button", class: "link", "data-testid": "thread-close", "aria-label": "Close thread", onclick: () => { ui.thread = null; render(); } }, "✕")),
    messageList(channel, [root], { inThread: true }),
    h("div", { class: "thread-count" }, count(replies.filter((r) => !r.ephemeral).length, "reply", "replies")),
    messageList(channel, replies, { inThread: true })));
}

// Re-rendered only when the view changes, so typing survives the live updates.
function modalPane() {
  const modal = ui.state.modal;
  const key = modal ? `${modal.id}:${modal.hash}` : null;
  if (key === ui.modalKey) return;
  ui.modalKey = key;
  const root = $("modal-root");
  if (!modal) { root.replaceChildren(); return; }
  const inputs = [];
  const collect = () => Object.fromEntries(inputs.map((i) => [i.blockId, { [i.actionId]: i.field.collect() }]));
  const ctx = { ...renderContext((action) => post("action", { view_id: modal.id, values: collect(), action })), inputs };
  const body = blocks(modal.blocks, ctx);
  const problem = h("div", { class: "bk-error", hidden: true });
  const submit = async () => {
    body.querySelectorAll(".bk-error").forEach((e) => (e.hidden = true));
    const answer = await post("submit", { view_id: modal.id, values: collect() });
    for (const [blockId, text] of Object.entries(answer.errors || {})) {
      const err = body.querySelector(`[data-block-id="${CSS.escape(blockId)}"] .bk-error`);
      if (err) Object.assign(err, { hidden: false, textContent: text });
    }
    if (answer.error) Object.assign(problem, { hidden: false, textContent: answer.error });
  };
  root.replaceChildren(h("div", { class: "overlay" },
    h("div", { class: "modal", role: "dialog", "aria-modal": "true", "data-testid": "modal", "aria-label": modal.title?.text },
      h("div", { class: "modal-header" }, h("h2", {}, modal.title?.text),
        h("button", { type: "button", class: "link", "aria-label": "Close", onclick: () => post("close", { view_id: modal.id }) }, "✕")),
      h("div", { class: "modal-body" }, body, problem),
      h("div", { class: "modal-footer" },
        h("button", { type: "button", class: "bk-btn", "data-testid": "modal-close", onclick: () => post("close", { view_id: modal.id }) }, modal.close?.text ?? "Cancel"),
        modal.submit ? h("button", { type: "button", class: "bk-btn bk-btn-primary", "data-testid": "modal-submit", onclick: submit }, modal.submit.text) : null))));
}

function sidebar() {
  const switcher = $("user-switcher");
  if (!switcher.options.length) {
    for (const u of ui.state.users) switcher.append(h("option", { value: u.id }, `${u.name} (${u.role})`));
    switcher.addEventListener("change", () => switchUser(switcher.value));
  }
  switcher.value = ui.me;
  $("channel-list").replaceChildren(...ui.state.channels.filter((c) => !c.is_im).map((c) =>
    h("li", {}, h("button", {
      type: "button", class: `side-item${ui.place.kind === "channel" && ui.place.id === c.id ? " active" : ""}`,
      "data-testid": `channel-${c.name}`, onclick: () => { ui.place = { kind: "channel", id: c.id }; ui.thread = null; drawer(false); render(); },
    }, `# ${c.name}`))));
  $("app-link").classList.toggle("active", ui.place.kind === "app");
  $("api-log").replaceChildren(...ui.state.log.slice().reverse().map((c) =>
    h("li", { class: c.ok ? "" : "failed" }, `${c.method}${c.ok ? "" : ` → ${c.error}`}`)));
  tickClock();
}

// The banner's clock shows the bot's time, which runs `--speed` times
// faster: redrawn every second, so at x600 it moves ten minutes a second.
function tickClock() {
  const clock = ui.state?.clock;
  $("demo-clock").textContent = clock ? `bot clock ×${clock.speed}: ${new Date(botNow()).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit", second: "2-digit" })}` : "";
}

// The sidebar is a drawer on a narrow window (style.css); `open` or close it.
function drawer(open) {
  document.body.classList.toggle("drawer-open", open);
  $("drawer-toggle").setAttribute("aria-expanded", String(open));
}

// A live update redraws the page, and a click whose press and release land
// on two different drawings of a button is no click at all: the browser
// fires it only when both hit the same element (UI Events, "click";
// https://w3c.github.io/uievents/#event-type-click). So while a pointer is
// pressed, redrawing waits, and happens once it is released and the click
// has run. A release the page never sees (the window lost focus) ends the
// wait too.
const press = { down: false, pending: false };
const released = () => setTimeout(() => {
  press.down = false;
  if (press.pending) { press.pending = false; render(); }
});
document.addEventListener("pointerdown", () => { press.down = true; }, true);
for (const type of ["pointerup", "pointercancel"]) document.addEventListener(type, released, true);
window.addEventListener("blur", released);

function render() {
  if (!ui.state) return;
  if (press.down) { press.pending = true; return; }
  sidebar();
  const main = $("main");
  const panes = ui.place.kind === "app" ? appPane() : channelPane(ui.place.id);
  const old = main.querySelector(".messages, .home");
  const atBottom = !old || old.scrollHeight - old.scrollTop - old.clientHeight < 80;
  const scroll = old?.scrollTop ?? 0;
  const focused = document.activeElement;
  main.replaceChildren(...panes);
  if (focused?.isConnected && focused !== document.activeElement) focused.focus();
  const list = main.querySelector(".messages, .home");
  if (list) list.scrollTop = atBottom && list.classList.contains("messages") ? list.scrollHeight : scroll;
  threadPane();
  modalPane();
}

// --- navigation and the live feed ----------------------------------------------------

function openApp(tab) {
  ui.place = { kind: "app", tab };
  ui.thread = null;
  render();
  if (tab === "home") post("home", {}); // Slack sends app_home_opened each time
}

function switchUser(id) {
  ui.me = id;
  localStorage.setItem("me", id);
  ui.version = -1;
  ui.modalKey = null;
  ui.abort?.abort();
}

async function feed() {
  for (;;) {
    const me = ui.me;
    ui.abort = new AbortController();
    try {
      const response = await fetch(`/ui/state?user=${encodeURIComponent(me)}&since=${ui.version}`, { signal: ui.abort.signal });
      const state = await response.json();
      if (me !== ui.me || !state.ok) continue;
      const first = ui.state === null || ui.state.me !== me;
      Object.assign(ui, { state, version: state.version, receivedAt: Date.now() });
      document.body.dataset.version = String(state.version);
      document.body.dataset.user = me;
      render();
      if (first && ui.place.kind === "app" && ui.place.tab === "home") post("home", {});
    } catch (err) {
      if (err.name !== "AbortError") await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

$("app-link").addEventListener("click", () => { drawer(false); openApp("home"); });
$("drawer-toggle").addEventListener("click", () => drawer(!document.body.classList.contains("drawer-open")));
$("drawer-backdrop").addEventListener("click", () => drawer(false));
setInterval(tickClock, 1000);
feed();
