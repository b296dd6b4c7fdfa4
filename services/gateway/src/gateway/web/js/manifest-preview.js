// Reading a manifest in the browser, for the preview table only: the server checks every
// row again (POST /api/v1/batches/quote) and its answer is what counts. Rows are numbered
// as the server numbers them (docs/catalogues.md): from 1, blank lines not counted.

export const COLUMNS = ["sku", "title", "description", "image", "cta", "price", "style"];
const DELIMITERS = [",", ";", "\t"];

// The separator the header line uses most (commas on a tie or when none is used).
function sniffDelimiter(text) {
  const header = text.split("\n", 1)[0];
  let best = ",";
  let most = 0;
  for (const d of DELIMITERS) {
    const count = header.split(d).length - 1;
    if (count > most) [best, most] = [d, count];
  }
  return best;
}

// CSV records as arrays of strings: quoted values may hold the separator, quotes ("")
// and line breaks.
export function csvRecords(text, delimiter) {
  const records = [];
  let record = [];
  let value = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        value += '"';
        i += 1;
      } else if (c === '"') quoted = false;
      else value += c;
    } else if (c === '"' && value === "") quoted = true;
    else if (c === delimiter) {
      record.push(value);
      value = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      record.push(value);
      records.push(record);
      record = [];
      value = "";
    } else value += c;
  }
  if (value !== "" || record.length) {
    record.push(value);
    records.push(record);
  }
  return records;
}

function csvRows(text) {
  const [header, ...records] = csvRecords(text, sniffDelimiter(text));
  if (!header) return [];
  const names = header.map((name) => name.trim().toLowerCase());
  const rows = [];
  for (const values of records) {
    if (!values.some((v) => v.trim())) continue; // blank lines are not rows
    const row = { number: rows.length + 1, values: {} };
    for (const name of COLUMNS) {
      const index = names.indexOf(name);
      if (index >= 0 && index < values.length) row.values[name] = values[index].trim();
    }
    rows.push(row);
  }
  return rows;
}

function jsonRows(text) {
  let data = JSON.parse(text);
  if (data && !Array.isArray(data) && Array.isArray(data.rows)) data = data.rows;
  if (!Array.isArray(data)) throw new Error('A JSON manifest is a list of objects, or {"rows": [...]}.');
  return data.map((item, index) => {
    const values = {};
    if (item && typeof item === "object" && !Array.isArray(item)) {
      for (const [key, value] of Object.entries(item)) {
        const name = key.trim().toLowerCase();
        if (COLUMNS.includes(name) && value !== null) values[name] = String(value).trim();
      }
    }
    return { number: index + 1, values };
  });
}

// The rows of a manifest's text: [{number, values: {sku, title, …}}]. Throws an Error with a
// message for a text it cannot read (the server's quote then says exactly why).
export function manifestRows(text, filename) {
  text = text.replace(/^\uFEFF/, "");
  const name = filename.toLowerCase();
  const json = name.endsWith(".json") || (!/\.(csv|tsv|txt)$/.test(name) && /^\s*[[{]/.test(text));
  if (!json) return csvRows(text);
  try {
    return jsonRows(text);
  } catch (error) {
    throw new Error(error instanceof SyntaxError ? "The manifest is not valid JSON." : error.message);
  }
}

export async function readManifest(file) {
  return manifestRows(await file.text(), file.name);
}
