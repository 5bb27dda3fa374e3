// What every page shares: the one fetch helper for the JSON API (it sends the CSRF token),
// notices, the confirm dialog, and the data-action buttons and data-api forms of the pages.

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
let clockOffset = 0; // server time minus this browser's time, from the Date header

export class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Call the JSON API on this origin; answers the parsed body, throws ApiFailure on an error.
export async function api(method, path, body) {
  const options = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRF-Token": csrfToken },
  };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const date = Date.parse(response.headers.get("Date") ?? "");
  if (!Number.isNaN(date)) clockOffset = date - Date.now();
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiFailure(response.status, data?.message ?? `request failed (${response.status})`);
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
  if (error instanceof ApiFailure && error.status === 401) location.assign("/ui/login");
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

// Re-render the page's main content from the server, which owns all rendering.
export async function refresh() {
  const response = await fetch(location.href, { credentials: "same-origin" });
  if (response.redirected) {
    location.assign(response.url); // the session ended: the login page
    return;
  }
  if (!response.ok) throw new Error(`the page could not be reloaded (${response.status})`);
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  const content = fresh.getElementById("content");
  if (content) document.getElementById("content").replaceChildren(...content.childNodes);
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

document.querySelector("[data-logout]")?.addEventListener("click", async () => {
  try {
    await api("DELETE", "/v1/session");
  } finally {
    location.assign("/ui/login");
  }
});
