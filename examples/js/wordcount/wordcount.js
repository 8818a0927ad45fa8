// Counts the words, lines and characters of a text and lists its most frequent words:
// the JavaScript twin of examples/wordcount, with the same input and output.
//
//   wasmq-task build examples/js/wordcount/wordcount.js -o wordcount-js.wasm
//   wasmq run wordcount-js.wasm --input '{"text": "the cat and the hat"}'
import { Fatal, task } from "wasmq-task";

const TOP = 5;
// A letter has two cases or is beyond Latin-1; the engine has no `\p{L}` in regexps.
const isWordChar = (c) => /[0-9]/.test(c) || c.toLowerCase() !== c.toUpperCase() || c > "\u00ff";
function key(word) {
  const chars = [...word];
  let start = 0;
  let end = chars.length;
  while (start < end && !isWordChar(chars[start])) start++;
  while (end > start && !isWordChar(chars[end - 1])) end--;
  return chars.slice(start, end).join("").toLowerCase();
}

export default task((input, cx) => {
  if (typeof input?.text !== "string") throw new Fatal('input must be {"text": "..."}');
  const text = input.text;
  cx.info(`counting ${new TextEncoder().encode(text).length} bytes of text`);
  const words = text.split(/\s+/).filter(Boolean);
  const counts = new Map();
  for (const k of words.map(key)) if (k) counts.set(k, (counts.get(k) ?? 0) + 1);
  cx.progress(80, "counted");
  const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).slice(0, TOP);
  const lines = text === "" ? 0 : text.replace(/\r?\n$/, "").split(/\r?\n/).length;
  return { words: words.length, lines, chars: [...text].length, top };
});
