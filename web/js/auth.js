// API token for a liubai server with auth on (LIUBAI_AUTH=1): asked for when the server says 401, kept for
// this tab only (sessionStorage, never localStorage or a cookie), sent as a Bearer header.

import { $ } from "./dom.js";

const KEY = "liubai.token";
let asking = null;

export function authHeaders() {
  const token = sessionStorage.getItem(KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

// Resolves once the user gave a token, rejects if they cancel. Concurrent callers share one prompt.
export function askForToken(reason) {
  if (asking) return asking;
  const dialog = $("token-dialog");
  const form = $("token-form");
  const input = $("token-input");
  $("token-reason").textContent = reason;
  input.value = "";
  asking = new Promise((resolve, reject) => {
    const done = (ok) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", onClose);
      asking = null;
      if (ok) resolve();
      else reject(new Error("an API token is needed to read this server"));
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      sessionStorage.setItem(KEY, token);
      done(true); // unhooks onClose first, so closing below is not a cancel
      dialog.close();
    };
    const onClose = () => done(false);
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", onClose);
    $("token-cancel").onclick = () => dialog.close();
    dialog.showModal();
    input.focus();
  });
  return asking;
}
