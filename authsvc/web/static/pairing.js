// The live list of pairing requests: polls GET /v1/pairing/challenges every second, renders
// each request from a <template> with textContent only (an app name is untrusted text).
import { api, ApiFailure, notify, report, serverNow, toLogin } from "./authsvc.js";

const POLL_MS = 1000;
const list = document.getElementById("challenges");
const template = document.getElementById("challenge-card");
const empty = document.getElementById("empty");
const banner = document.getElementById("locked");
const notifyButton = document.getElementById("notify");
const baseTitle = document.title;
const multiUser = list.dataset.multiUser === "true";
const mayManage = list.dataset.mayManage === "true";
let needsApproval = list.dataset.needsApproval === "true";
const cards = new Map(); // challenge id -> {card, challenge}
let first = true; // the first listing is what was already waiting, not news

function secondsLeft(challenge) {
  return Math.max(0, Math.round((Date.parse(challenge.expires_at) - serverNow()) / 1000));
}

function formatSeconds(total) {
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

function fill(card, challenge) {
  const part = (selector) => card.querySelector(selector);
  // A device (OAuth) request is approved by typing the code the app shows, on /ui/device.
  const isDevice = challenge.kind === "device";
  const approved = isDevice || !needsApproval || Boolean(challenge.claimed_by);
  const showCode = approved && Boolean(challenge.code);
  part(".app-name").textContent = challenge.app_name;
  part(".code").textContent = challenge.code ?? "";
  part(".code-line").hidden = !showCode;
  part(".approval-note").hidden = showCode || isDevice;
  part(".device-note").hidden = !isDevice;
  part(".attempts").hidden = isDevice;
  part(".approval-note").textContent = challenge.claimed_by
    ? "Approved by another user."
    : "Approve this request to see its code.";
  part(".client-ip").textContent = challenge.client_ip ?? "unknown";
  part(".user-agent").textContent = challenge.user_agent ?? "not sent";
  part(".origin").textContent = challenge.origin ?? "not sent";
  part(".attempts-left").textContent = String(challenge.attempts_left);
  part(".time-left").textContent = formatSeconds(secondsLeft(challenge));
  part(".approve").hidden = approved;
}

function remove(id) {
  cards.get(id)?.card.remove();
  cards.delete(id);
  update();
}

function add(challenge) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.dataset.challengeId = challenge.challenge_id;
  card.querySelector(".deny").addEventListener("click", () => deny(challenge.challenge_id));
  card.querySelector(".approve").addEventListener("click", () => approve(challenge.challenge_id));
  list.append(card);
  cards.set(challenge.challenge_id, { card, challenge });
  fill(card, challenge);
}

function update() {
  empty.hidden = cards.size > 0;
  document.title = cards.size ? `(${cards.size}) ${baseTitle}` : baseTitle;
}

function announce(challenges) {
  const names = challenges.map((challenge) => challenge.app_name).join(", ");
  notify(`New pairing request: ${names}`, "ok");
  if (document.hidden && "Notification" in window && Notification.permission === "granted") {
    new Notification("authsvc: an app asks to pair", { body: names });
  }
}

function render(challenges) {
  const seen = new Set(challenges.map((challenge) => challenge.challenge_id));
  for (const id of [...cards.keys()]) if (!seen.has(id)) remove(id);
  const arrived = [];
  for (const challenge of challenges) {
    const known = cards.get(challenge.challenge_id);
    if (known) {
      known.challenge = challenge;
      fill(known.card, challenge);
    } else {
      add(challenge);
      arrived.push(challenge);
    }
  }
  if (arrived.length && !first) announce(arrived);
  first = false;
  update();
}

async function act(change) {
  try {
    await change();
  } catch (error) {
    report(error);
  }
}

function deny(id) {
  return act(async () => {
    await api("POST", `/v1/pairing/challenges/${encodeURIComponent(id)}/deny`);
    remove(id);
    notify("Request denied.", "ok");
  });
}

function approve(id) {
  return act(async () => {
    const { code } = await api("POST", `/v1/pairing/challenges/${encodeURIComponent(id)}/claim`);
    const known = cards.get(id);
    if (known) fill(known.card, { ...known.challenge, code, claimed_by: "you" });
  });
}

async function poll() {
  try {
    const listing = await api("GET", "/v1/pairing/challenges?limit=1000");
    if (mayManage) {
      const settings = await api("GET", "/v1/settings");
      banner.hidden = settings.pairing_enabled;
      needsApproval = multiUser || settings.pairing_requires_approval;
    }
    render(listing.data);
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 401) {
      toLogin();
      return;
    }
    notify(`Cannot reach authsvc: ${error.message}`);
  }
  setTimeout(poll, POLL_MS);
}

// Count down between polls; an expired request leaves the list by itself.
setInterval(() => {
  for (const [id, { card, challenge }] of cards) {
    const left = secondsLeft(challenge);
    if (left === 0) remove(id);
    else card.querySelector(".time-left").textContent = formatSeconds(left);
  }
}, 1000);

document.getElementById("turn-on")?.addEventListener("click", () =>
  act(async () => {
    await api("PATCH", "/v1/settings", { pairing_enabled: true });
    banner.hidden = true;
    notify("Pairing is on again.", "ok");
  }),
);

if ("Notification" in window && Notification.permission === "default") {
  notifyButton.hidden = false;
  notifyButton.addEventListener("click", async () => {
    await Notification.requestPermission();
    notifyButton.hidden = true;
  });
}

poll();
