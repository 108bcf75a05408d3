// Account management for admins (the dialog exists in the page only for admins; the API
// refuses everyone else with 403 anyway).
import { api } from "./api.js";
import { t, translatePage } from "./i18n.js";

export async function openUsers() {
  const dialog = document.getElementById("users");
  await refresh();
  translatePage(dialog);
  if (!dialog.open) dialog.showModal();
}

async function refresh() {
  const users = await api("/users");
  const body = document.querySelector("#users-table tbody");
  body.replaceChildren(...users.map((u) => {
    const tr = document.createElement("tr");
    for (const text of [u.username, u.display_name, t("role." + u.role) + (u.disabled ? ` (${t("users.disabled")})` : "")]) {
      const td = document.createElement("td"); td.textContent = text; tr.append(td);
    }
    return tr;
  }));
}

document.getElementById("users-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const message = document.getElementById("users-message");
  const role = form.role.value;
  try {
    await api("/users", {
      method: "POST",
      body: {
        username: form.username.value, display_name: form.display_name.value, role,
        password: (role === "integration" || role === "device") ? null : form.password.value,
      },
    });
    message.textContent = t("users.created", { name: form.username.value });
    message.className = "ok";
    form.reset();
    await refresh();
  } catch (err) {
    message.textContent = err.message; message.className = "bad";
  }
});
document.getElementById("users-close")?.addEventListener("click", () => document.getElementById("users").close());
