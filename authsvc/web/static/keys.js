// The keys page: the creation form, the once-shown secret with Copy, and rotation.
import { api, ask, run } from "./authsvc.js";

const secretPanel = document.getElementById("secret");
const secretValue = document.getElementById("secret-value");
const copyButton = document.getElementById("copy");

function lines(text) {
  const items = text.split("\n").map((line) => line.trim()).filter(Boolean);
  return items.length ? items : null;
}

function keyBody(form) {
  const fields = form.elements;
  const body = {
    name: fields.namedItem("name").value.trim(),
    organization: fields.namedItem("organization").value || null,
    allowed_endpoints: lines(fields.namedItem("allowed_endpoints").value),
    allowed_ips: lines(fields.namedItem("allowed_ips").value),
    scopes: [...form.querySelectorAll('input[name="scopes"]:checked')].map((box) => box.value),
  };
  const expires = fields.namedItem("expires").value;
  if (expires === "custom") body.expires_at = `${fields.namedItem("expires_on").value}T00:00:00Z`;
  else if (expires) body.expires_in_days = Number(expires);
  const requests = fields.namedItem("rate_requests").value;
  if (requests) {
    body.rate_limit = {
      requests: Number(requests),
      per_seconds: Number(fields.namedItem("rate_per").value),
    };
  }
  const remaining = fields.namedItem("usage_remaining").value;
  if (remaining) {
    const interval = fields.namedItem("usage_refill").value;
    body.usage_limit = {
      remaining: Number(remaining),
      refill: interval ? { interval, amount: Number(remaining) } : null,
    };
  }
  return body;
}

// The secret lives only in this panel, never in the server-rendered page.
function showSecret(created) {
  document.getElementById("secret-name").textContent = created.name;
  secretValue.textContent = created.api_key;
  copyButton.textContent = "Copy";
  secretPanel.hidden = false;
  document.getElementById("secret-heading").focus();
}

copyButton.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(secretValue.textContent);
    copyButton.textContent = "Copied";
  } catch {
    getSelection().selectAllChildren(secretValue); // the person copies it by hand
    copyButton.textContent = "Selected: press Ctrl+C";
  }
});

document.getElementById("secret-done").addEventListener("click", () => {
  secretValue.textContent = "";
  secretPanel.hidden = true;
});

// The page's content is re-rendered after every change, so its listeners are delegated.
document.addEventListener("change", (event) => {
  if (event.target.id !== "key-expires") return;
  const custom = event.target.value === "custom";
  document.getElementById("custom-expiry").hidden = !custom;
  document.getElementById("key-expires-on").required = custom;
});

document.addEventListener("submit", async (event) => {
  if (event.target.id !== "create-key") return;
  event.preventDefault();
  const created = await run(() => api("POST", "/v1/api-keys", keyBody(event.target)));
  if (created) showSecret(created);
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.rotate");
  if (!button) return;
  document.getElementById("rotate-name").textContent = button.dataset.keyName;
  if ((await ask(document.getElementById("rotate"))) !== "rotate") return;
  const grace = Number(document.getElementById("rotate-grace").value);
  const path = `/v1/api-keys/${encodeURIComponent(button.dataset.keyId)}/rotate`;
  const created = await run(() => api("POST", path, { grace_seconds: grace }));
  if (created) showSecret(created);
});
