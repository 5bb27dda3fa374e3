// The device page: look a request up by the code its app shows, then approve or deny it.
// Everything the app sent is shown with textContent only (it is untrusted text).
import { api, notify, report } from "./authsvc.js";

const DAY_MS = 24 * 3600 * 1000;
const codeForm = document.getElementById("device-code");
const requestForm = document.getElementById("device-request");
const codeField = document.getElementById("user-code");
let userCode = "";

function show(request) {
  const part = (selector) => requestForm.querySelector(selector);
  part(".app-name").textContent = request.app_name;
  part(".client-ip").textContent = request.client_ip ?? "unknown";
  part(".user-agent").textContent = request.user_agent ?? "not sent";
  part(".origin").textContent = request.origin ?? "not sent";
  part(".scope").textContent = request.scope ?? "api";
  requestForm.hidden = false;
}

function narrowing() {
  const fields = requestForm.elements;
  const body = {};
  const organization = fields.namedItem("organization").value;
  if (organization) body.organization = organization;
  const days = Number(fields.namedItem("expires").value);
  if (days) body.expires_at = new Date(Date.now() + days * DAY_MS).toISOString();
  const endpoints = fields
    .namedItem("allowed_endpoints")
    .value.split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  if (endpoints.length) body.allowed_endpoints = endpoints;
  return body;
}

async function decide(action) {
  const body = { user_code: userCode, action, ...(action === "approve" ? narrowing() : {}) };
  try {
    const decided = await api("POST", "/v1/pairing/device", body);
    requestForm.hidden = true;
    codeField.value = "";
    const what = decided.status === "approved" ? "Approved" : "Denied";
    notify(`${what}: ${decided.app_name}.`, "ok");
  } catch (error) {
    report(error);
  }
}

codeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  requestForm.hidden = true;
  try {
    const request = await api("POST", "/v1/pairing/device/lookup", { user_code: codeField.value });
    userCode = codeField.value;
    show(request);
  } catch (error) {
    report(error);
  }
});

requestForm.addEventListener("submit", (event) => {
  event.preventDefault();
  decide("approve");
});
requestForm.querySelector(".deny").addEventListener("click", () => decide("deny"));
