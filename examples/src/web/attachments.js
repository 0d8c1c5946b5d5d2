// Attachments: files picked, dropped or pasted into the composer, checked against Bedrock's
// limits for a quick answer (the server stays the judge: it also checks that the bytes are
// what the format says), shown as removable chips, read into the base64 JSON the API takes;
// and the attachments of sent messages, shown as thumbnails and document links.

/** Bedrock's limits per message, as the server applies them. */
export const LIMITS = { images: 20, imageBytes: 3_750_000, documents: 5, documentBytes: 4_500_000 };

const IMAGE_EXTENSIONS = { png: 'png', jpg: 'jpeg', jpeg: 'jpeg', gif: 'gif', webp: 'webp' };
const IMAGE_TYPES = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/gif': 'gif', 'image/webp': 'webp' };
const DOCUMENT_EXTENSIONS = {
  pdf: 'pdf', csv: 'csv', doc: 'doc', docx: 'docx', xls: 'xls', xlsx: 'xlsx',
  html: 'html', htm: 'html', txt: 'txt', md: 'md', markdown: 'md',
};

/** What the file picker offers. */
export const ACCEPT = [
  ...Object.keys(IMAGE_EXTENSIONS),
  ...Object.keys(DOCUMENT_EXTENSIONS),
].map((ext) => `.${ext}`).concat(Object.keys(IMAGE_TYPES)).join(',');

const SUPPORTED = 'attach PNG, JPEG, GIF or WebP images, or PDF, CSV, DOC, DOCX, XLS, XLSX, HTML, TXT or Markdown documents';

/** Bytes for a person: `812 B`, `12.3 KB`, `3.75 MB` (decimal units, as the limits are). */
export function formatSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${trim(bytes / 1000, 1)} KB`;
  return `${trim(bytes / 1_000_000, 2)} MB`;
}

function trim(value, digits) {
  return String(Number(value.toFixed(digits)));
}

/** An image or a document by its file name (or, for a pasted image, its type); null for other files. */
export function classify(file) {
  const dot = file.name.lastIndexOf('.');
  const ext = dot > 0 ? file.name.slice(dot + 1).toLowerCase() : '';
  if (IMAGE_EXTENSIONS[ext]) return { kind: 'image', format: IMAGE_EXTENSIONS[ext] };
  if (DOCUMENT_EXTENSIONS[ext]) return { kind: 'document', format: DOCUMENT_EXTENSIONS[ext] };
  if (!ext && IMAGE_TYPES[file.type]) return { kind: 'image', format: IMAGE_TYPES[file.type] };
  return null;
}

/**
 * The name Bedrock accepts for a document, from its file name, as the server makes it: the
 * stem with every character other than letters, digits, `-`, `(`, `)`, `[`, `]` a space,
 * spaces collapsed, at most 200 characters; `document` when nothing is left.
 */
export function documentName(fileName) {
  const dot = fileName.lastIndexOf('.');
  const stem = dot > 0 ? fileName.slice(0, dot) : fileName;
  const cleaned = stem.replace(/[^\p{Alphabetic}\p{N}\-()[\]]/gu, ' ').split(/\s+/).filter(Boolean).join(' ');
  return [...cleaned].slice(0, 200).join('').trim() || 'document';
}

/** `bytes` in base64, a slice at a time (one spread of 4 MB would overflow the stack). */
export function base64Of(bytes) {
  const CHUNK = 0x8000;
  const pieces = [];
  for (let i = 0; i < bytes.length; i += CHUNK) {
    pieces.push(String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK)));
  }
  return btoa(pieces.join(''));
}

/**
 * The attachments waiting in the composer, shown as chips in `list`; `onChange` runs after
 * each change.
 */
export class Tray {
  constructor(list, onChange = () => {}) {
    this.list = list;
    this.onChange = onChange;
    this.items = [];
  }

  /** Queues `files`; returns what is wrong with those that were not taken, in words. */
  add(files) {
    const problems = [];
    for (const file of files) {
      const type = classify(file);
      const count = (kind) => this.items.filter((item) => item.kind === kind).length;
      if (!type) {
        problems.push(`“${file.name}” is not a supported file type: ${SUPPORTED}.`);
      } else if (file.size === 0) {
        problems.push(`“${file.name}” is empty.`);
      } else if (type.kind === 'image' && file.size > LIMITS.imageBytes) {
        problems.push(`“${file.name}” is too large: an image can be at most ${formatSize(LIMITS.imageBytes)}.`);
      } else if (type.kind === 'document' && file.size > LIMITS.documentBytes) {
        problems.push(`“${file.name}” is too large: a document can be at most ${formatSize(LIMITS.documentBytes)}.`);
      } else if (type.kind === 'image' && count('image') >= LIMITS.images) {
        problems.push(`“${file.name}” was not added: at most ${LIMITS.images} images can be sent with a message.`);
      } else if (type.kind === 'document' && count('document') >= LIMITS.documents) {
        problems.push(`“${file.name}” was not added: at most ${LIMITS.documents} documents can be sent with a message.`);
      } else {
        const item = { file, ...type, name: file.name || `image.${type.format}`, url: null };
        if (type.kind === 'image') item.url = URL.createObjectURL(file);
        this.items.push(item);
      }
    }
    this.render();
    return problems;
  }

  remove(item) {
    this.items = this.items.filter((other) => other !== item);
    if (item.url) URL.revokeObjectURL(item.url);
    this.render();
  }

  /** Takes out `items` (sent), leaving any queued since. */
  discard(items) {
    for (const item of items) if (this.items.includes(item)) this.remove(item);
  }

  /** Dims the chips while they are being sent. */
  setBusy(on) {
    this.list.classList.toggle('busy', on);
    this.list.setAttribute('aria-busy', String(on));
  }

  render() {
    this.list.replaceChildren(...this.items.map((item) => this.chip(item)));
    this.list.hidden = this.items.length === 0;
    this.onChange();
  }

  chip(item) {
    const li = document.createElement('li');
    li.className = `chip ${item.kind}`;
    li.append(preview(item.kind, item.format, item.url), label(item.name, item.format, item.file.size));
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'icon chip-remove';
    remove.textContent = '×';
    remove.setAttribute('aria-label', `Remove ${item.name}`);
    remove.addEventListener('click', () => {
      const at = this.items.indexOf(item);
      this.remove(item);
      // Focus stays in the tray, on the chip that took this one's place, or goes back to
      // the message box once the tray is empty.
      const next = this.list.children[Math.min(at, this.items.length - 1)];
      if (next) next.querySelector('.chip-remove').focus();
      else document.getElementById('input').focus();
    });
    li.append(remove);
    return li;
  }
}

/** A thumbnail of an image, or a badge with a document's format. */
function preview(kind, format, url) {
  if (kind === 'image') {
    const img = document.createElement('img');
    img.className = 'thumb';
    img.alt = '';
    if (url) img.src = url;
    return img;
  }
  const badge = document.createElement('span');
  badge.className = 'badge';
  badge.setAttribute('aria-hidden', 'true');
  badge.textContent = format.toUpperCase();
  return badge;
}

/** The name, and `TXT · 1.2 KB` under it. */
function label(name, format, size) {
  const text = document.createElement('span');
  text.className = 'chip-text';
  const title = document.createElement('span');
  title.className = 'chip-name';
  title.textContent = name;
  title.title = name;
  const meta = document.createElement('span');
  meta.className = 'chip-meta';
  meta.textContent = `${format.toUpperCase()} · ${formatSize(size)}`;
  text.append(title, meta);
  return text;
}

/**
 * The `attachments` of a send for `items`: their bytes read and in base64, each document
 * with a name of its own (Bedrock refuses two documents of one message with one name).
 */
export async function encode(items) {
  const names = new Set();
  return Promise.all(items.map(async (item) => {
    const data = base64Of(new Uint8Array(await item.file.arrayBuffer()));
    if (item.kind === 'image') return { type: 'image', format: item.format, data };
    const base = documentName(item.name);
    let name = base;
    for (let n = 2; names.has(name.toLowerCase()); n += 1) name = `${base} (${n})`;
    names.add(name.toLowerCase());
    return { type: 'document', format: item.format, name, data };
  }));
}

/**
 * What the server's refusal of a send with attachments means, naming the file (the error's
 * `field` is `attachments[i]...`); null when the refusal is not about the attachments.
 */
export function describeRefusal(error, names) {
  const { status, body } = error;
  if (![400, 413, 415].includes(status)) return null;
  const at = /^attachments\[(\d+)\]/.exec(body?.field ?? '');
  if (!at && status === 400) return null;
  const file = at && names[Number(at[1])] ? `“${names[Number(at[1])]}”` : 'An attachment';
  const reason = (body?.message ?? '')
    .replace(/^(invalid )?attachments\[\d+\](\.\w+)?:\s*/, '')
    .replace(/(\d{4,}) bytes/g, (_, n) => formatSize(Number(n)));
  // The library's reasons read `is not a png image`: make a sentence of them.
  const why = reason ? `: ${reason.replace(/^is /, 'it is ')}` : '';
  if (status === 415) return `${file} is not a supported file type${why}.`;
  if (status === 413 && !at) return `The attachments are too large to send together${why}.`;
  if (status === 413 && /^at most/.test(reason)) return `Too many attachments${why}.`;
  if (status === 413) return `${file} is too large${why}.`;
  return `${file} was not accepted${why}.`;
}

// --- attachments of sent messages ------------------------------------------------------------

/** Object URLs made for the messages on show, revoked when another conversation opens. */
const shown = new Set();

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  shown.add(url);
  return url;
}

/** Frees the object URLs of the messages that were on show. */
export function releaseShown() {
  for (const url of shown) URL.revokeObjectURL(url);
  shown.clear();
}

/**
 * Fetches attachments with the page's credentials: `headers()` gives the request headers,
 * with `authorization` when the person saved a token (then images and downloads go through
 * fetch() and blob: URLs, as a plain `<img src>` or link would not carry it).
 */
function loader(headers) {
  const auth = headers();
  if (!auth.authorization) return null;
  return async (url) => {
    const response = await fetch(url, { headers: auth });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return objectUrl(await response.blob());
  };
}

/**
 * The attachments of a message, as a list of image thumbnails (each opening the image in
 * `viewer`) and document links. `attachments` are either a stored message's parts (`url`,
 * `format`, `name`, `size`) or the items just sent (`file`).
 */
export function attachmentList(attachments, { headers, viewer }) {
  const load = loader(headers);
  const list = document.createElement('ul');
  list.className = 'sent-attachments';
  list.setAttribute('aria-label', 'Attachments');
  attachments.forEach((attachment, i) => {
    const local = attachment.file ? objectUrl(attachment.file) : null;
    const size = attachment.file?.size ?? attachment.size ?? 0;
    const li = document.createElement('li');
    if (attachment.url) li.dataset.url = attachment.url;
    if (attachment.type === 'image' || attachment.kind === 'image') {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'sent-image';
      const alt = `Image ${i + 1} (${attachment.format.toUpperCase()}, ${formatSize(size)})`;
      button.setAttribute('aria-label', `Open ${alt}`);
      const img = preview('image', attachment.format, null);
      img.alt = alt;
      img.addEventListener('error', () => li.classList.add('broken'), { once: true });
      let src = local;
      if (!src && load) {
        load(attachment.url).then((url) => { img.src = url; }, () => li.classList.add('broken'));
      } else if (!src) {
        src = attachment.url;
      }
      if (src) img.src = src;
      button.append(img);
      button.addEventListener('click', () => {
        if (img.src) viewer(img.src, alt, `image-${i + 1}.${attachment.format}`);
      });
      li.append(button);
    } else {
      const name = attachment.name ?? attachment.file.name;
      const link = document.createElement('a');
      link.className = 'chip document';
      const fileName = attachment.file ? attachment.file.name : `${name}.${attachment.format}`;
      link.href = local ?? attachment.url;
      link.download = fileName;
      link.append(preview('document', attachment.format, null), label(name, attachment.format, size));
      link.setAttribute('aria-label', `Download ${fileName} (${attachment.format.toUpperCase()}, ${formatSize(size)})`);
      if (!local && load) {
        // With a token, the link itself would be refused: fetch, then save the blob.
        link.addEventListener('click', async (event) => {
          event.preventDefault();
          try {
            const save = document.createElement('a');
            save.href = await load(attachment.url);
            save.download = fileName;
            save.click();
          } catch {
            li.classList.add('broken');
          }
        });
      }
      li.append(link);
    }
    list.append(li);
  });
  return list;
}
