// The login form, and the `authsvc open` link: its fragment carries the owner token, which is
// posted once and removed from the address bar (a fragment never reaches a server log).
// Login keeps the session's CSRF token, the pages' half of their credential, in this origin's
// storage; the session token of the answer is not kept (the cookie is the other half).
import { api, keepCsrfToken, notify } from "./authsvc.js";

const form = document.getElementById("login");

function failure(error) {
  if (error.status === 401) {
    return document.getElementById("username") ? "Wrong username or password." : "Wrong password.";
  }
  if (error.status === 429 && error.retryAfter !== null) {
    const unit = error.retryAfter === 1 ? "second" : "seconds";
    return `Too many failed logins: try again in ${error.retryAfter} ${unit}.`;
  }
  return error.message;
}

// Where to go once logged in: a page of these pages only, never another site.
function nextPage() {
  const next = new URLSearchParams(location.search).get("next") ?? "";
  return /^\/ui\/[^\\]*$/.test(next) && !next.startsWith("/ui//") ? next : "/ui/";
}

async function logIn(credentials) {
  try {
    const started = await api("POST", "/v1/session", credentials);
    keepCsrfToken(started.csrf_token);
    location.replace(nextPage());
  } catch (error) {
    notify(failure(error));
    document.getElementById("password").focus();
  }
}

function logInFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (!fragment.has("token")) return;
  history.replaceState(null, "", location.pathname + location.search);
  logIn({ password: fragment.get("token") });
}

logInFromFragment();
// The link pasted into a tab already showing this page changes only the fragment.
window.addEventListener("hashchange", logInFromFragment);

// The fields have no name attribute, so a submission without this script sends nothing.
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const username = document.getElementById("username");
  const password = document.getElementById("password").value;
  logIn(username ? { username: username.value, password } : { password });
});
