// The live pool board (公海看板): GraphQL over fetch, pool events over graphql-transport-ws.
// Data only ever reaches the page as textContent, never as markup.

const TOKEN_KEY = "meihua.token";
const POOL_KEY = "meihua.pool";
const PAGE_SIZE = 100;
const FEED_LENGTH = 50;
const TOAST_MS = 5000;
const MAX_BACKOFF_MS = 30000;
const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;
const STEADY_MS = 10000;

const ROW_FIELDS = "id name industry region level inPool poolEnteredAt pool { id name }";
const LOGIN = `mutation($username: String!, $password: String!) {
  login(username: $username, password: $password) { token user { id name } }
}`;
const POOLS = "{ me { name } pools { id name customerCount } }";
const CUSTOMERS = `query($poolId: ID, $first: Int, $after: String) {
  customers(filter: {inPool: true, poolId: $poolId}, first: $first, after: $after) {
    edges { node { ${ROW_FIELDS} } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}`;
const CLAIM = "mutation($id: ID!) { claimCustomer(id: $id) { id owner { id name } } }";
const POOL_EVENTS = `subscription($after: String) {
  poolEvents(after: $after) {
    cursor kind at reason actor { name } previousOwner { name } newOwner { name }
    customer { ${ROW_FIELDS} }
  }
}`;

const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// --- GraphQL over HTTP ------------------------------------------------------------

class ApiError extends Error {
  constructor(message, extensions = {}) {
    super(message);
    this.code = extensions.code ?? "INTERNAL";
    this.extensions = extensions;
  }
}

async function request(query, variables = {}) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("The server cannot be reached. 无法连接服务器。", { code: "NETWORK" });
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status}.`);
  }
  const error = body.errors?.[0];
  if (error) throw new ApiError(error.message, error.extensions);
  return body.data;
}

// --- Pool events over graphql-transport-ws -----------------------------------------

// One subscription to poolEvents that reconnects by itself, with backoff, and
// resumes after the last cursor it received so no event falls between two sockets.
class PoolFeed {
  constructor(token, { onEvent, onState, onGap, onRejected }) {
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onGap = onGap;
    this.onRejected = onRejected;
    this.cursor = null;
    this.socket = null;
    this.operation = null;
    this.operations = 0;
    this.attempts = 0;
    this.wasLive = false;
    this.liveSince = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.quiet();
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "Signed out");
    this.onState("offline");
  }

  retryNow() {
    if (this.stopped || this.socket) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/graphql`, "graphql-transport-ws");
    this.socket = socket;
    this.onState("connecting");
    socket.addEventListener("open", () => {
      const payload = { Authorization: `Bearer ${this.token}` };
      this.send(socket, { type: "connection_init", payload });
    });
    socket.addEventListener("message", (message) => this.receive(socket, message.data));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  send(socket, message) {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  receive(socket, data) {
    if (socket !== this.socket) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      socket.close(4400, "Unreadable message");
      return;
    }
    switch (message.type) {
      case "connection_ack":
        this.acknowledged(socket);
        break;
      case "ping":
        this.send(socket, { type: "pong" });
        break;
      case "pong":
        clearTimeout(this.pongTimer);
        break;
      case "next":
        if (message.id === this.operation) this.next(socket, message.payload ?? {});
        break;
      case "error":
        if (message.id === this.operation) this.failed(socket, message.payload, true);
        break;
      case "complete":
        // The server ended the subscription; a new socket resumes from the cursor.
        if (message.id === this.operation) socket.close(1000, "Subscription ended");
        break;
    }
  }

  acknowledged(socket) {
    // Without a cursor, whatever happened while away cannot be replayed: reload instead.
    if (this.wasLive && this.cursor === null) this.onGap();
    this.wasLive = true;
    this.liveSince = Date.now();
    this.onState("live");
    this.operations += 1;
    this.operation = String(this.operations);
    this.send(socket, {
      id: this.operation,
      type: "subscribe",
      payload: { query: POOL_EVENTS, variables: { after: this.cursor } },
    });
    this.pingTimer = setInterval(() => {
      this.send(socket, { type: "ping" });
      this.pongTimer = setTimeout(() => socket.close(4408, "No pong"), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  next(socket, payload) {
    const event = payload.data?.poolEvents;
    if (event) {
      this.cursor = event.cursor;
      this.attempts = 0;
      this.onEvent(event);
    } else if (payload.errors?.length) {
      this.failed(socket, payload.errors, false);
    }
  }

  // `ended`: the server gave up on the operation, rather than on one event of it.
  failed(socket, errors, ended) {
    const extensions = errors?.[0]?.extensions ?? {};
    if (extensions.code === "UNAUTHENTICATED") {
      this.stop();
      this.onRejected();
      return;
    }
    if (extensions.code === "BAD_USER_INPUT" && extensions.field === "after") {
      this.cursor = null; // older than the server keeps: reload on the next connection
    } else if (extensions.code === "LIMIT_EXCEEDED" && extensions.cursor) {
      this.cursor = extensions.cursor; // fell behind: resume where delivery stopped
    } else if (!ended) {
      return; // one event that could not be shown; the subscription goes on
    }
    socket.close(1000, "Resubscribing");
  }

  quiet() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.operation = null;
    this.quiet();
    if (this.stopped) return;
    if (event.code === 4401 || event.code === 4403) {
      this.stopped = true;
      this.onState("offline");
      this.onRejected();
      return;
    }
    if (this.liveSince && Date.now() - this.liveSince > STEADY_MS) this.attempts = 0;
    this.liveSince = 0;
    const ceiling = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.attempts);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.attempts += 1;
    this.onState("waiting", delay);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }
}

// --- The board ---------------------------------------------------------------------

const state = {
  pools: [],
  poolId: null,
  rows: new Map(), // customer id → { customer, tr }
  total: 0,
  endCursor: null,
  hasMore: false,
  pending: null, // events that arrive while a page loads, applied after it
  loads: 0,
  feed: null,
};

const CONNECTION_LABELS = {
  connecting: () => "Connecting… 连接中",
  live: () => "● Live 实时",
  waiting: (ms) => `Reconnecting in ${Math.ceil(ms / 1000)} s… 重新连接中`,
  offline: () => "Offline 离线",
};

function showConnection(kind, ms) {
  const badge = $("connection");
  badge.dataset.state = kind;
  badge.textContent = CONNECTION_LABELS[kind](ms);
}

function toast(text, tone = "ok") {
  const box = $("toasts");
  const note = element("div", `toast toast-${tone}`, text);
  box.append(note);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => note.remove(), TOAST_MS);
}

function formatTime(value, withDate) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return withDate ? date.toLocaleString() : date.toLocaleTimeString();
}

function enteredAt(customer) {
  const time = Date.parse(customer.poolEnteredAt ?? "");
  return Number.isNaN(time) ? 0 : time;
}

// Newest in the pool first; the name breaks ties so the order is stable.
function comesBefore(a, b) {
  const difference = enteredAt(a) - enteredAt(b);
  if (difference !== 0) return difference > 0;
  return a.name.localeCompare(b.name) < 0;
}

function cell(label, text) {
  const td = element("td", null, text || "—");
  td.dataset.label = label;
  return td;
}

function buildRow(customer) {
  const tr = element("tr");
  tr.dataset.id = customer.id;
  const name = cell("Customer 客户", customer.name);
  name.className = "name";
  const button = element("button", "claim", "Claim 领取");
  button.type = "button";
  button.addEventListener("click", () => claim(customer.id, button));
  const action = element("td", "action");
  action.append(button);
  tr.append(
    name,
    cell("Industry 行业", customer.industry),
    cell("Region 地区", customer.region),
    cell("Level 级别", customer.level),
    cell("In pool since 入池时间", formatTime(customer.poolEnteredAt, true)),
    action,
  );
  return tr;
}

function placeRow(customer) {
  const known = state.rows.get(customer.id);
  if (known) known.tr.remove();
  const tr = buildRow(customer);
  state.rows.set(customer.id, { customer, tr });
  const body = $("rows");
  const before = [...body.children].find(
    (other) => !comesBefore(state.rows.get(other.dataset.id).customer, customer),
  );
  body.insertBefore(tr, before ?? null);
  return !known;
}

function addRow(customer) {
  if (placeRow(customer)) state.total += 1;
  showCount();
}

function removeRow(id) {
  const known = state.rows.get(id);
  if (!known) return;
  known.tr.remove();
  state.rows.delete(id);
  state.total = Math.max(0, state.total - 1);
  showCount();
}

function showCount() {
  const shown = state.rows.size;
  $("pool-count").textContent =
    state.hasMore ? `${shown} of ${state.total} 共 ${state.total} 个` : `${state.total} 个客户`;
  $("empty").hidden = shown > 0 || state.pools.length === 0;
  $("customers").hidden = shown === 0;
  $("load-more").hidden = !state.hasMore;
}

function applyToRows(event) {
  // The customer comes as it is now, so a replayed release of one taken since stays out.
  const customer = event.customer;
  const taken = event.kind === "CLAIMED" || event.kind === "ASSIGNED";
  if (taken || !customer.inPool || customer.pool?.id !== state.poolId) removeRow(customer.id);
  else addRow(customer);
}

function feedText(event) {
  const actor = event.actor?.name ?? "Someone";
  const name = event.customer.name;
  const reason = event.reason ? `: ${event.reason}` : "";
  switch (event.kind) {
    case "CLAIMED":
      return `${actor} claimed ${name}`;
    case "ASSIGNED":
      return `${actor} assigned ${name} to ${event.newOwner?.name ?? "someone"}`;
    case "RELEASED":
      return `${actor} released ${name}${reason}`;
    case "RECYCLED":
      return `Recycled: ${name}${event.reason ? ` (${event.reason})` : ""}`;
    default:
      return `${event.kind}: ${name}`;
  }
}

const KIND_LABELS = { CLAIMED: "领取", ASSIGNED: "分配", RELEASED: "放入", RECYCLED: "回收" };

function addFeedLine(event) {
  const item = element("li", `event event-${event.kind.toLowerCase()}`);
  const time = element("time", null, formatTime(event.at, false));
  time.dateTime = event.at;
  item.append(
    time,
    element("span", "kind", KIND_LABELS[event.kind] ?? event.kind),
    element("span", "text", feedText(event)),
  );
  const feed = $("feed");
  feed.prepend(item);
  while (feed.children.length > FEED_LENGTH) feed.lastElementChild.remove();
  $("feed-empty").hidden = true;
}

function onPoolEvent(event) {
  addFeedLine(event);
  if (state.pending) state.pending.push(event);
  else applyToRows(event);
}

async function loadPool(more = false) {
  if (!state.poolId) return;
  const load = ++state.loads;
  state.pending ??= [];
  try {
    const data = await request(CUSTOMERS, {
      poolId: state.poolId,
      first: PAGE_SIZE,
      after: more ? state.endCursor : null,
    });
    if (load !== state.loads) return;
    const page = data.customers;
    if (!more) {
      state.rows.clear();
      $("rows").replaceChildren();
    }
    for (const edge of page.edges) placeRow(edge.node);
    state.total = page.totalCount;
    state.hasMore = page.pageInfo.hasNextPage;
    state.endCursor = page.pageInfo.endCursor;
  } catch (error) {
    if (load !== state.loads) return;
    if (!failedSession(error)) toast(error.message, "error");
  }
  const pending = state.pending ?? [];
  state.pending = null;
  pending.forEach(applyToRows);
  showCount();
}

function selectPool(poolId) {
  state.poolId = poolId;
  sessionStorage.setItem(POOL_KEY, poolId);
  const pool = state.pools.find((p) => p.id === poolId);
  $("pool-name").textContent = pool ? pool.name : "公海 Pool";
  loadPool();
}

function showPools() {
  const select = $("pool-select");
  select.replaceChildren(
    ...state.pools.map((pool) => {
      const option = element("option", null, pool.name);
      option.value = pool.id;
      return option;
    }),
  );
  select.value = state.poolId ?? "";
  $("pool-picker").hidden = state.pools.length < 2;
  $("pool-name").hidden = state.pools.length > 1;
  const message = $("pool-message");
  message.hidden = state.pools.length > 0;
  message.textContent = "You are not a member of any pool. 您不属于任何公海。";
}

async function claim(id, button) {
  const name = state.rows.get(id)?.customer.name ?? "This customer";
  button.disabled = true;
  button.textContent = "Claiming… 领取中";
  try {
    await request(CLAIM, { id });
    removeRow(id);
    toast(`${name} is yours now. 已领取到您名下。`, "ok");
    return;
  } catch (error) {
    if (failedSession(error)) return;
    if (error.code === "CONFLICT" || error.code === "NOT_FOUND") {
      removeRow(id);
      toast(`Someone was faster: ${name} is taken. 手慢了，已被他人领取。`, "warn");
      return;
    }
    toast(error.message, "error");
  }
  button.disabled = false;
  button.textContent = "Claim 领取";
}

function failedSession(error) {
  if (error.code !== "UNAUTHENTICATED") return false;
  signOut("Your session has ended; please sign in again. 登录已失效，请重新登录。");
  return true;
}

async function enterBoard() {
  $("sign-in").hidden = true;
  $("board").hidden = false;
  $("session").hidden = false;
  let data;
  try {
    data = await request(POOLS);
  } catch (error) {
    if (!failedSession(error)) toast(error.message, "error");
    return;
  }
  $("me").textContent = data.me.name;
  state.pools = data.pools;
  const saved = sessionStorage.getItem(POOL_KEY);
  const chosen = state.pools.find((pool) => pool.id === saved) ?? state.pools[0];
  state.poolId = chosen?.id ?? null;
  showPools();
  state.feed = new PoolFeed(sessionStorage.getItem(TOKEN_KEY), {
    onEvent: onPoolEvent,
    onState: showConnection,
    onGap: () => loadPool(),
    onRejected: () => signOut("Your session has ended; please sign in again. 登录已失效，请重新登录。"),
  });
  state.feed.start();
  if (state.poolId) selectPool(state.poolId);
  else showCount();
}

function signOut(message) {
  state.feed?.stop();
  state.feed = null;
  state.loads += 1;
  state.pending = null;
  state.rows.clear();
  state.pools = [];
  state.poolId = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(POOL_KEY);
  $("rows").replaceChildren();
  $("feed").replaceChildren();
  $("feed-empty").hidden = false;
  $("me").textContent = "";
  showSignIn(message);
}

function showSignIn(message) {
  $("board").hidden = true;
  $("session").hidden = true;
  $("sign-in").hidden = false;
  const error = $("sign-in-error");
  error.hidden = !message;
  error.textContent = message ?? "";
  $("username").focus();
}

async function signIn(event) {
  event.preventDefault();
  const button = $("sign-in-button");
  const password = $("password");
  button.disabled = true;
  sessionStorage.removeItem(TOKEN_KEY);
  try {
    const data = await request(LOGIN, { username: $("username").value, password: password.value });
    sessionStorage.setItem(TOKEN_KEY, data.login.token);
    password.value = "";
    await enterBoard();
  } catch (error) {
    showSignIn(error.message);
    password.select();
  } finally {
    button.disabled = false;
  }
}

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => signOut());
$("pool-select").addEventListener("change", (event) => selectPool(event.target.value));
$("load-more").addEventListener("click", () => loadPool(true));
window.addEventListener("online", () => state.feed?.retryNow());

if (sessionStorage.getItem(TOKEN_KEY)) enterBoard();
else showSignIn();
