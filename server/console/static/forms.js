// What the console's forms share: lists typed in one field, and the API's refusal shown
// next to the field it names (declarations, appointments).

// "A, B；C" → ["A", "B", "C"] (commas, semicolons or spaces, full-width too).
export function list(value) {
  return value.split(/[\s,，;；]+/).map((s) => s.trim()).filter(Boolean);
}

// The error's field ("containers.0", "enterprise.code") → the closest field of the form.
export function fieldFor(form, field) {
  if (!field) return null;
  const names = [...form.querySelectorAll(".field-error")].map((n) => n.dataset.for);
  const best = names.filter((n) => field === n || field.startsWith(n + ".")).sort((a, b) => b.length - a.length)[0];
  return best ? form.querySelector(`.field-error[data-for="${best}"]`) : null;
}

export function clearErrors(form) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

// Shows `err` beside its field (focused) when the form has one; true if it did.
export function showFieldError(form, err) {
  const slot = fieldFor(form, err.field);
  if (!slot) return false;
  slot.textContent = err.message;
  const input = slot.parentElement.querySelector("input, select");
  input?.setAttribute("aria-invalid", "true");
  input?.focus();
  return true;
}
