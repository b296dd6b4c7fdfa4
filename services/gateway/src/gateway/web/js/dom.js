// Small DOM helpers shared by every screen. Text from users or the server only ever goes
// in with textContent, never parsed as HTML.

export const $ = (id) => document.getElementById(id);

// A new element with its text (as text) and attributes.
export function el(tag, text = "", attributes = {}) {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// A table's column headings, as its head row reads (for labelCells).
export function columnHeadings(table) {
  return [...table.tHead.rows[0].cells].map((th) => th.textContent);
}

// Names each cell of a table row after its column's heading (data-label): where a phone
// draws the row as a card (.list in style.css), the heading is shown with its cell.
export function labelCells(row, headings) {
  [...row.cells].forEach((cell, i) => cell.setAttribute("data-label", headings[i] || ""));
  return row;
}

export function show(element, visible) {
  element.hidden = !visible;
}

export function setText(element, text) {
  element.textContent = text;
}

export function formatBytes(bytes) {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / (1024 * 1024))} MiB` : `${Math.round(bytes / 1024)} KiB`;
}
