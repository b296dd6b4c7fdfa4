// The creative brief of a job (its `brief`: hook, benefits, CTA, price, palette), shown while
// the clip renders, as a sketch of the end card in the photo's colours.

import { $, setText, show } from "./dom.js";

const HEX = /^#[0-9a-f]{6}$/i;
const FAILED = new Set(["failed", "canceled"]);

// WCAG relative luminance of a #rrggbb colour.
function luminance(hex) {
  const channel = (i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
}

// Black or white, whichever reads better on `hex`.
function textOn(hex) {
  return luminance(hex) > 0.179 ? "#111111" : "#ffffff";
}

function renderPalette(colours) {
  const list = $("brief-palette");
  list.replaceChildren();
  for (const colour of colours) {
    const item = document.createElement("li");
    item.className = "swatch";
    // CSSOM, not a style attribute: allowed by the page's CSP, and only ever a checked hex.
    item.style.setProperty("--swatch", colour);
    item.title = colour;
    const name = document.createElement("span");
    name.className = "visually-hidden";
    name.textContent = colour;
    item.append(name);
    list.append(item);
  }
}

function paintCard(colours) {
  const card = $("brief-card");
  const [background, accent] = colours;
  for (const [name, value] of [
    ["--brief-bg", background],
    ["--brief-text", background && textOn(background)],
    ["--brief-accent", accent],
    ["--brief-accent-text", accent && textOn(accent)],
  ]) {
    if (value) card.style.setProperty(name, value);
    else card.style.removeProperty(name);
  }
}

// Shows the job's brief; hidden while it has none yet, and for a job that failed (no ad).
export function renderBrief(view) {
  const brief = view.brief;
  const shown = Boolean(brief && brief.hook) && !FAILED.has(view.status);
  show($("brief"), shown);
  if (!shown) return;
  const options = view.options || {};
  let title = "What your ad will say";
  if (view.status === "completed") title = "What your ad says";
  if (options.finish === false) title = "The brief (the raw clip has no captions or end card)";
  setText($("brief-title"), title);
  setText($("brief-hook"), brief.hook);
  const benefits = $("brief-benefits");
  benefits.replaceChildren();
  for (const line of Array.isArray(brief.benefits) ? brief.benefits : []) {
    const item = document.createElement("li");
    item.dir = "auto";
    item.textContent = line;
    benefits.append(item);
  }
  setText($("brief-cta"), brief.cta || "");
  show($("brief-cta"), Boolean(brief.cta));
  setText($("brief-price"), brief.price || "");
  show($("brief-price"), Boolean(brief.price));
  const colours = (Array.isArray(brief.palette) ? brief.palette : []).filter((c) => HEX.test(c));
  renderPalette(colours);
  paintCard(colours);
}
