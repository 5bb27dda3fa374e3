// The login form, and the `authsvc open` link: its fragment carries the owner token, which is
// posted once and removed from the address bar (a fragment never reaches a server log).
import { api, notify } from "./authsvc.js";

async function logIn(credentials) {
  try {
    await api("POST", "/v1/session", credentials);
    location.replace("/ui/");
  } catch (error) {
    notify(error.status === 401 ? "Wrong username or password." : error.message);
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

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  logIn(Object.fromEntries(new FormData(event.target)));
});
