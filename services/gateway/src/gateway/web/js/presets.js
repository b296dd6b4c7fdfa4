// The platform picker: one card per preset of /api/v1/config ("TikTok 9:16 · 9–15 s": its
// ratio and best lengths), which sets the aspect ratio and the length; "Custom" shows the
// raw aspect ratios instead.
// Without presets in the configuration (an older server) only the raw ratios are offered.

import { config } from "./api.js";
import { $, setText, show } from "./dom.js";

const CUSTOM = "";

function shapeClass(ratio) {
  return `r-${ratio.replace(":", "-")}`;
}

function card(value, label, detail, ratio) {
  const wrapper = document.createElement("label");
  wrapper.className = "ratio";
  const input = document.createElement("input");
  input.type = "radio";
  input.name = "preset";
  input.value = value;
  const shape = document.createElement("span");
  shape.className = `shape ${ratio ? shapeClass(ratio) : "custom"}`;
  shape.setAttribute("aria-hidden", "true");
  const text = document.createElement("span");
  text.textContent = `${label} `;
  const small = document.createElement("small");
  small.textContent = detail;
  text.append(small);
  wrapper.append(input, shape, text);
  return wrapper;
}

function presets() {
  return Array.isArray(config.presets) ? config.presets : [];
}

// The chosen preset's entry of the configuration, or null for "Custom".
export function selectedPreset() {
  const checked = document.querySelector('input[name="preset"]:checked');
  return (checked && presets().find((p) => p.name === checked.value)) || null;
}

function durationHint(preset, seconds) {
  if (!preset || !Array.isArray(preset.best)) return "";
  const [lo, hi] = preset.best;
  const fits = seconds >= lo && seconds <= hi;
  return `${preset.label} ads do best at ${lo}–${hi} s${fits ? "." : "; this length is outside that (it will be noted on the job)."}`;
}

// The hint under the length slider, for its current value.
export function updateDurationHint() {
  setText($("duration-hint"), durationHint(selectedPreset(), Number($("duration").value)));
}

// Applies the chosen card: its ratio (the radio the form sends) and its length range and default.
export function applyPreset() {
  const preset = selectedPreset();
  show($("ratio-field"), !preset);
  const range = (preset && preset.durations) || config.durations;
  const duration = $("duration");
  duration.min = String(range.min);
  duration.max = String(range.max);
  duration.value = String(range.default);
  setText($("duration-value"), duration.value);
  if (preset) {
    for (const input of document.querySelectorAll('input[name="aspect_ratio"]')) {
      input.checked = input.value === preset.aspect_ratio;
    }
  }
  updateDurationHint();
}

// Builds the cards once the configuration is known; the first preset of the default ratio
// is chosen, so most users never see a raw ratio.
export function buildPresetPicker() {
  const list = presets();
  show($("preset-field"), list.length > 0);
  if (!list.length) return;
  const box = $("presets");
  box.replaceChildren();
  for (const preset of list) {
    const best = Array.isArray(preset.best) ? ` · ${preset.best[0]}–${preset.best[1]} s` : "";
    box.append(card(preset.name, preset.label, `${preset.aspect_ratio}${best}`, preset.aspect_ratio));
  }
  box.append(card(CUSTOM, "Custom", "any ratio and length", null));
  const ratio = config.default_aspect_ratio || "9:16";
  const first = list.find((p) => p.aspect_ratio === ratio) || list[0];
  const input = box.querySelector(`input[value="${CSS.escape(first.name)}"]`);
  input.checked = true;
  input.defaultChecked = true; // what the form's reset() returns to
  box.addEventListener("change", applyPreset);
  applyPreset();
}
