import { api, ApiError } from "./api.js";
import { languagePicker, t, translatePage } from "./i18n.js";

languagePicker(document.getElementById("lang"));
translatePage();

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/"; // same site only
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const button = document.getElementById("submit");
  button.disabled = true;
  try {
    await api("/auth/login", {
      method: "POST", redirectOn401: false,
      body: { username: document.getElementById("username").value, password: document.getElementById("password").value },
    });
    location.assign(nextPage());
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) error.textContent = t("login.bad");
    else if (err instanceof ApiError && err.status === 429) error.textContent = t("login.locked", { s: err.retryAfter ?? "?" });
    else error.textContent = t("login.failed", { msg: err.message });
    error.dataset.code = err.code ?? "error";
  } finally {
    button.disabled = false;
  }
});
