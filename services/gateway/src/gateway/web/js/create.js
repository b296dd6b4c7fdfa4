// The "Make a video" form: photo, title, description and options, uploaded as one request.

import { authHeaders, config, errorMessage, newIdempotencyKey } from "./api.js";
import { $, formatBytes, setText, show } from "./dom.js";
import { applyPreset, buildPresetPicker, updateDurationHint } from "./presets.js";

const FIELD_LABELS = {
  image: "Photo",
  title: "Title",
  description: "Description",
  aspect_ratio: "Aspect ratio",
  duration: "Duration",
  style: "Style",
  preset: "Platform",
  cta: "Call to action",
  price: "Price",
  music: "Music",
  captions: "Captions",
  finish: "Finished ad",
  "Idempotency-Key": "Request",
};

let previewUrl = null;
// One key per distinct submission: a retry after a network error can never make a second job.
let pendingKey = null;
let hooks = { created() {}, sessionEnded() {} };
// After "Make another": the next video is made anew even if it asks for exactly what an
// earlier one did (without it, such a job completes at once with that earlier clip).
let regenerate = false;

function updateCounter(input, counter) {
  const max = input.maxLength;
  setText(counter, max > 0 ? `${input.value.length} / ${max}` : "");
}

const COUNTED = ["title", "description", "cta", "price"];

function updateCounters() {
  for (const name of COUNTED) updateCounter($(name), $(`${name}-count`));
}

// Captions, music, CTA and price only mean something on a finished ad.
function syncFinish() {
  $("finish-options").disabled = !$("finish").checked;
}

// The request: the form's fields, empty optional ones left out, the switches as the API
// spells them (music/captions "on"|"off", finish "true"|"false").
function formData(form) {
  const data = new FormData(form);
  for (const name of ["style", "cta", "price", "preset"]) {
    if (!String(data.get(name) || "").trim()) data.delete(name);
  }
  const finish = $("finish").checked;
  data.set("finish", String(finish));
  for (const name of ["music", "captions"]) {
    if (finish) data.set(name, $(name).checked ? "on" : "off");
    else data.delete(name);
  }
  if (regenerate) data.set("regenerate", "true");
  return data;
}

function clearFormErrors() {
  show($("form-error"), false);
  for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function showFormError(message, details = []) {
  const box = $("form-error");
  box.replaceChildren();
  const lead = document.createElement("span");
  lead.textContent = message;
  box.append(lead);
  if (details.length) {
    const list = document.createElement("ul");
    for (const detail of details) {
      const item = document.createElement("li");
      const label = FIELD_LABELS[detail.field] || detail.field || "";
      item.textContent = label ? `${label}: ${detail.message}` : detail.message;
      list.append(item);
      const field = detail.field && document.getElementsByName(detail.field)[0];
      if (field) field.setAttribute("aria-invalid", "true");
    }
    box.append(list);
  }
  show(box, true);
  box.scrollIntoView?.({ block: "nearest", behavior: "smooth" });
}

function checkBeforeUpload() {
  const problems = [];
  const file = $("image").files[0];
  if (!file) problems.push({ field: "image", message: "Choose a photo of the product." });
  else if (file.size > config.max_upload_bytes)
    problems.push({ field: "image", message: `The photo is larger than ${formatBytes(config.max_upload_bytes)}.` });
  if (!$("title").value.trim()) problems.push({ field: "title", message: "Give the product a title." });
  if (!$("description").value.trim()) problems.push({ field: "description", message: "Describe the product." });
  return problems;
}

function onPhotoChosen() {
  const file = $("image").files[0];
  const preview = $("preview");
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = file ? URL.createObjectURL(file) : null;
  if (!previewUrl) {
    show(preview, false);
    return;
  }
  preview.onload = () => {
    const min = config.limits.min_image_side;
    if (Math.min(preview.naturalWidth, preview.naturalHeight) < min) {
      showFormError(`This photo is ${preview.naturalWidth}×${preview.naturalHeight} pixels; both sides must be at least ${min}.`);
    }
  };
  preview.src = previewUrl;
  preview.alt = `Preview of ${file.name}`;
  show(preview, true);
}

async function onSubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearFormErrors();
  const problems = checkBeforeUpload();
  if (problems.length) {
    showFormError("Please check the form.", problems);
    return;
  }
  const data = formData(form);
  pendingKey = pendingKey || newIdempotencyKey();

  const button = $("submit");
  button.disabled = true;
  setText(button, "Uploading…");
  try {
    const response = await fetch("/api/v1/jobs", {
      method: "POST",
      body: data,
      headers: { "Idempotency-Key": pendingKey, ...authHeaders() },
    });
    const body = await response.json().catch(() => null);
    if (response.status === 401) {
      hooks.sessionEnded();
      return;
    }
    if (!response.ok) {
      const error = body && body.error;
      showFormError(errorMessage(response, body), (error && Array.isArray(error.details) && error.details) || []);
      if (response.status === 409 || response.status === 503) pendingKey = null;
      return;
    }
    pendingKey = null;
    regenerate = false;
    hooks.created({ id: body.id, token: body.token }, body.job);
  } catch {
    showFormError("Could not reach the server. Check your connection and press “Create video” again.");
  } finally {
    button.disabled = false;
    setText(button, "Create video");
  }
}

// The limits and choices of /api/v1/config on the form's fields.
function applyConfig() {
  const { limits, durations } = config;
  $("title").maxLength = limits.title_max_length;
  $("description").maxLength = limits.description_max_length;
  if (limits.style_max_length) $("style").maxLength = limits.style_max_length;
  if (config.cta_max_length) $("cta").maxLength = config.cta_max_length;
  if (config.price_max_length) $("price").maxLength = config.price_max_length;
  setText($("min-side"), String(limits.min_image_side));
  setText($("max-size"), formatBytes(config.max_upload_bytes));
  const duration = $("duration");
  duration.min = String(durations.min);
  duration.max = String(durations.max);
  duration.value = String(durations.default);
  setText($("duration-value"), duration.value);
  if (Array.isArray(config.aspect_ratios)) {
    for (const input of document.querySelectorAll('input[name="aspect_ratio"]')) {
      input.closest("label").hidden = !config.aspect_ratios.includes(input.value);
      input.checked = input.value === (config.default_aspect_ratio || "9:16");
      input.defaultChecked = input.checked;
    }
  }
  buildPresetPicker();
}

export function showCreate(visible) {
  show($("create"), visible);
}

// An empty form again, for the next video; `again`: "Make another", made anew.
export function resetForm({ again = false } = {}) {
  regenerate = again;
  $("job-form").reset();
  show($("preview"), false);
  applyPreset();
  syncFinish();
  updateCounters();
  clearFormErrors();
  $("image").focus();
}

// hooks.created(job, view): the job was accepted; hooks.sessionEnded(): the API said 401.
export function initCreate(given) {
  hooks = given;
  applyConfig();
  const form = $("job-form");
  form.addEventListener("submit", onSubmit);
  form.addEventListener("input", () => {
    pendingKey = null; // a changed request is a new request
  });
  $("image").addEventListener("change", onPhotoChosen);
  $("duration").addEventListener("input", (e) => {
    setText($("duration-value"), e.target.value);
    updateDurationHint();
  });
  $("finish").addEventListener("change", syncFinish);
  for (const name of COUNTED) {
    $(name).addEventListener("input", () => updateCounter($(name), $(`${name}-count`)));
  }
  syncFinish();
  updateCounters();
}
