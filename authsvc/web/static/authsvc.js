// What every page shares: the one fetch helper (it sends the pages' CSRF token), the shell that
// fills a page in, notices, the confirm dialog, and the data-action buttons and data-api forms.
//
// The pages' credential has two halves: the HttpOnly session cookie, which the browser sends by
// itself (to every port of this host, so it proves nothing alone), and the CSRF token, which
// login keeps in localStorage (bound to this origin, port included) and send() adds as a header.

const CSRF_STORAGE = "authsvc.csrf";
const CSRF_HEADER = "X-CSRF-Token";
let clockOffset = 0; // server time minus this browser's time, from the Date header

export class ApiFailure extends Error {
  constructor(status, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter; // seconds, from Retry-After, when the server sent one
  }
}

export function keepCsrfToken(token) {
  localStorage.setItem(CSRF_STORAGE, token);
}

export function forgetCsrfToken() {
  localStorage.removeItem(CSRF_STORAGE);
}

// To the login page; unless logging out, back to this page once logged in (a device link
// keeps its code).
export function toLogin(comeBack = true) {
  const here = location.pathname + location.search;
  const next = comeBack && here !== "/ui/" ? `?${new URLSearchParams({ next: here })}` : "";
  location.assign(`/ui/login${next}`);
}

// The one fetch helper of the pages: this origin only, with the CSRF token when one is kept.
export async function send(path, options = {}) {
  const headers = { ...options.headers };
  const token = localStorage.getItem(CSRF_STORAGE);
  if (token) headers[CSRF_HEADER] = token;
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  const date = Date.parse(response.headers.get("Date") ?? "");
  if (!Number.isNaN(date)) clockOffset = date - Date.now();
  return response;
}

// Call the JSON API on this origin; answers the parsed body, throws ApiFailure on an error.
export async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await send(path, options);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const wait = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    const message = data?.message ?? `request failed (${response.status})`;
    throw new ApiFailure(response.status, message, Number.isNaN(wait) ? null : wait);
  }
  return data;
}

// Now, by the server's clock (so countdowns agree with expiry times it sends).
export function serverNow() {
  return Date.now() + clockOffset;
}

export function notify(message, kind = "error") {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.className = `notice ${kind}`;
  notice.setAttribute("role", kind === "error" ? "alert" : "status");
  notice.hidden = false;
}

// Tell the person what failed; an ended session goes back to the login page.
export function report(error) {
  if (error instanceof ApiFailure && error.status === 401) toLogin();
  else notify(error.message);
}

// Show a modal dialog; resolves to the value of the button that closed it.
export function ask(dialog) {
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true });
    dialog.showModal();
  });
}

export async function confirmAction(message, label) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = message;
  document.getElementById("confirm-ok").textContent = label || "Confirm";
  return (await ask(dialog)) === "ok";
}

// This page as the server renders it for the session; an ended session goes to the login page.
async function fetchPage() {
  const response = await send(location.href, { headers: { Accept: "text/html" } });
  if (response.status === 401 || response.status === 403) {
    toLogin();
    return null;
  }
  const text = await response.text();
  if (!response.ok) {
    let message = `the page could not be loaded (${response.status})`;
    try {
      message = JSON.parse(text).message ?? message;
    } catch {}
    throw new Error(message);
  }
  return new DOMParser().parseFromString(text, "text/html");
}

// Re-render the page's main content from the server, which owns all rendering.
export async function refresh() {
  const fresh = await fetchPage();
  const content = fresh?.getElementById("content");
  if (content) document.getElementById("content").replaceChildren(...content.childNodes);
}

// A navigation gets an empty shell: fill it with the page, then run the page's own scripts.
async function fillShell() {
  if (!localStorage.getItem(CSRF_STORAGE)) {
    toLogin();
    return;
  }
  const fresh = await fetchPage();
  if (!fresh) return;
  document.title = fresh.title;
  document.body.replaceChildren(...fresh.body.childNodes);
  for (const script of fresh.querySelectorAll('script[type="module"][src]')) {
    await import(new URL(script.getAttribute("src"), location.href).href);
  }
  document.body.dataset.ready = "true"; // the page's scripts listen now
}

// Run one change, report its outcome and re-render. Its result (a new key's secret) is handed
// back even when the re-render fails, so a secret is never lost to a network hiccup.
export async function run(change, done) {
  let result;
  try {
    result = await change();
  } catch (error) {
    report(error);
    return undefined;
  }
  if (done) notify(done, "ok");
  try {
    await refresh();
  } catch (error) {
    notify(`Done, but ${error.message}: reload the page.`);
  }
  return result;
}

function setPath(target, dotted, value) {
  const names = dotted.split(".");
  const last = names.pop();
  for (const name of names) target = target[name] ??= {};
  target[last] = value;
}

// A form's fields as a JSON body: data-type="bool" (checkbox), "int" and "lines" (a list).
export function formBody(form) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled) continue;
    const type = field.dataset.type;
    if (type === "bool") {
      setPath(body, field.name, field.checked);
    } else if (type === "int") {
      if (field.value !== "") setPath(body, field.name, Number(field.value));
    } else if (type === "lines") {
      setPath(body, field.name, field.value.split("\n").map((line) => line.trim()).filter(Boolean));
    } else if (field.value !== "") {
      setPath(body, field.name, field.value);
    }
  }
  return body;
}

function splitAction(text) {
  const [method, path] = text.split(" ");
  return { method, path };
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const { method, path } = splitAction(button.dataset.action);
  const { confirm, confirmLabel, body, done } = button.dataset;
  if (confirm && !(await confirmAction(confirm, confirmLabel))) return;
  await run(() => api(method, path, body ? JSON.parse(body) : undefined), done);
});

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  const { method, path } = splitAction(form.dataset.api);
  await run(() => api(method, path, formBody(form)), form.dataset.done);
});

document.addEventListener("click", async (event) => {
  if (!event.target.closest("[data-logout]")) return;
  try {
    await api("DELETE", "/v1/session");
  } finally {
    forgetCsrfToken();
    toLogin(false);
  }
});

// A filter form (data-query) is posted like every form, but read as this page with its query.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-query]");
  if (!form) return;
  event.preventDefault();
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) if (value !== "") query.append(name, value);
  location.assign(`${form.dataset.query}?${query}`);
});

if (document.querySelector("[data-shell]")) {
  fillShell().catch((error) => notify(error.message));
}
