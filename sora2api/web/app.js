// The panel's shell: session, login, forced password change, navigation between pages.

import { api, apiKey, session, setAuthErrorHandler } from "./api.js";
import { clear, field, h, notify, submitForm } from "./dom.js";
import * as characters from "./characters.js";
import * as jobs from "./jobs.js";
import * as apiKeys from "./keys.js";
import * as playground from "./playground.js";
import * as settings from "./settings.js";
import * as tokens from "./tokens.js";
import * as webhooks from "./webhooks.js";

// Each page: render(root, app) → optional cleanup function (stops its polling).
const PAGES = {
  tokens: { title: "Tokens", render: tokens.render },
  jobs: { title: "Jobs", render: jobs.renderJobs },
  logs: { title: "Logs", render: jobs.renderLogs },
  characters: { title: "Characters", render: characters.render },
  keys: { title: "API keys", render: apiKeys.renderKeys },
  usage: { title: "Usage", render: apiKeys.renderUsage },
  webhooks: { title: "Webhooks", render: webhooks.render },
  settings: { title: "Settings", render: settings.render },
  playground: { title: "Playground", render: playground.render },
};

const view = () => document.getElementById("view");
// authed: the server accepted this browser's session (the bearer of this tab, or the HttpOnly
// cookie that every tab of the browser shares).
const app = { me: null, authed: false, cleanup: null, showLogin, showPasswordChange, logout };

function setAnon(anon) {
  document.body.classList.toggle("anon", anon);
  document.getElementById("nav-user").textContent = anon || !app.me ? "" : app.me.username || "";
}

function stopPage() {
  if (app.cleanup) {
    try {
      app.cleanup();
    } catch {
      /* a page's cleanup must never block navigation */
    }
  }
  app.cleanup = null;
}

function pageName() {
  const name = window.location.hash.replace(/^#\/?/, "").split(/[/?]/)[0];
  return Object.prototype.hasOwnProperty.call(PAGES, name) ? name : "tokens";
}

function route() {
  if (!app.authed) return showLogin();
  if (app.me && app.me.must_change_password) return showPasswordChange(true);
  if (window.location.pathname !== "/") {
    // /login (or any other entry path) once logged in: land on the pages under "/".
    window.history.replaceState(null, "", `/#/${pageName()}`);
  }
  stopPage();
  setAnon(false);
  const name = pageName();
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  closeMenu();
  document.title = `${PAGES[name].title} · sora2api admin`;
  const root = clear(view());
  const section = h("section", { class: "page", id: `page-${name}` });
  root.append(section);
  app.cleanup = PAGES[name].render(section, app) || null;
}

// -- login --------------------------------------------------------------------------------

function showLogin(message) {
  stopPage();
  app.me = null;
  setAnon(true);
  document.title = "Log in · sora2api admin";
  const user = h("input", { name: "username", autocomplete: "username", required: true, value: "" });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Log in");
  const form = h(
    "form",
    { class: "card auth-card", id: "login-form" },
    h("h1", {}, "sora2api admin"),
    message ? h("p", { class: "notice" }, message) : null,
    field("Username", user),
    field("Password", pass),
    error,
    submit,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    await submitForm(submit, error, async () => {
      await login(user.value.trim(), pass.value);
    });
  });
  clear(view()).append(form);
  user.focus();
}

async function login(username, password) {
  const data = await api("POST", "/api/login", { username, password }, { noAuthRedirect: true });
  session.set(data.token);
  app.authed = true;
  app.me = { username, must_change_password: Boolean(data.must_change_password) };
  if (app.me.must_change_password) return showPasswordChange(true);
  await loadMe();
  route();
}

async function loadMe() {
  try {
    app.me = await api("GET", "/api/admin/me");
  } catch (err) {
    if (err.status === 401) throw err;
    // /api/admin/me is optional for the panel: keep what login told us.
    app.me = app.me || { username: "", must_change_password: false };
  }
}

async function logout() {
  try {
    await api("POST", "/api/logout", undefined, { noAuthRedirect: true });
  } catch {
    /* the session is dropped locally either way */
  }
  session.clear();
  apiKey.clear();
  app.authed = false;
  showLogin("You are logged out.");
}

// -- password change ----------------------------------------------------------------------

function showPasswordChange(forced) {
  stopPage();
  setAnon(true);
  document.title = "Change password · sora2api admin";
  const oldPw = h("input", { name: "old_password", type: "password", autocomplete: "current-password", required: true });
  const username = h("input", { name: "username", autocomplete: "username", placeholder: app.me?.username || "admin" });
  const newPw = h("input", { name: "new_password", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const repeat = h("input", { name: "repeat_password", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Change password");
  const form = h(
    "form",
    { class: "card auth-card", id: "password-form" },
    h("h1", {}, "Change the admin password"),
    forced
      ? h("p", { class: "notice notice-warn" }, "This server still uses the default admin password. Choose a new one before using the panel.")
      : null,
    field("Current password", oldPw),
    field("New username (optional)", username, "Leave empty to keep the current username."),
    field("New password", newPw, "At least 8 characters."),
    field("Repeat new password", repeat),
    error,
    h("div", { class: "actions" }, forced ? null : h("button", { type: "button", class: "btn", onclick: () => route() }, "Cancel"), submit),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    if (newPw.value !== repeat.value) {
      error.textContent = "The two new passwords differ.";
      return;
    }
    await submitForm(submit, error, async () => {
      await changePassword(oldPw.value, newPw.value, username.value.trim(), forced);
    });
  });
  clear(view()).append(form);
  oldPw.focus();
}

async function changePassword(oldPassword, newPassword, newUsername, forced) {
  const body = { old_password: oldPassword, new_password: newPassword };
  if (newUsername) body.username = newUsername;
  await api("POST", "/api/admin/password", body, { noAuthRedirect: true });
  // The server revoked every session: log in again with the new credentials.
  session.clear();
  app.authed = false;
  notify("Password changed. All sessions were signed out.", "ok");
  const username = newUsername || app.me?.username || "admin";
  app.me = null;
  // After the first-run change the admin starts where the work is: the token pool.
  if (forced) window.history.replaceState(null, "", "/#/tokens");
  try {
    await login(username, newPassword);
  } catch {
    showLogin("Password changed. Log in with the new password.");
  }
}

// -- wiring -------------------------------------------------------------------------------

function handleAuthError(err) {
  if (err.status === 401) {
    session.clear();
    app.authed = false;
    showLogin("Your session ended. Log in again.");
  } else if (err.status === 403 && err.code === "password_change_required") {
    app.me = { ...(app.me || {}), must_change_password: true };
    showPasswordChange(true);
  }
}

function closeMenu() {
  document.getElementById("nav").classList.remove("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", "false");
}

function wireChrome() {
  const toggle = document.getElementById("menu-toggle");
  toggle.addEventListener("click", () => {
    const open = document.getElementById("nav").classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", () => {
    if (app.authed && !(app.me && app.me.must_change_password)) route();
  });
}

async function boot() {
  setAuthErrorHandler(handleAuthError);
  wireChrome();
  // Ask the server rather than this tab's storage: a new tab has an empty sessionStorage but
  // sends the session cookie, and must not ask to log in again.
  const hadSession = Boolean(session.get());
  try {
    app.me = await api("GET", "/api/admin/me", undefined, { noAuthRedirect: true });
  } catch (err) {
    if (err.status === 403 && err.code === "password_change_required") {
      app.authed = true;
      app.me = { username: "", must_change_password: true };
      return showPasswordChange(true);
    }
    session.clear();
    return showLogin(hadSession && err.status === 401 ? "Your session ended. Log in again." : undefined);
  }
  app.authed = true;
  route();
}

boot();
