// Markdown to safe DOM: `marked` renders the text with every piece of raw HTML in it
// escaped (so `<script>` or `<img onerror>` typed by a user or written by a model shows as
// text) and images turned into plain links (no tracking pixels); DOMPurify then removes
// anything executable that is left (`javascript:` URLs, event handlers). The page's
// Content-Security-Policy forbids inline script as a last wall.
import { Marked } from './vendor/marked.esm.js';
import DOMPurify from './vendor/purify.es.mjs';

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text with HTML's special characters escaped. */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    image({ href, text }) {
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'img', 'svg', 'math'],
  FORBID_ATTR: ['style', 'class', 'id'],
};

// Links open in a new tab, without giving it this page or a referrer.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

/** `text` rendered as Markdown, as a sanitised DocumentFragment. */
export function renderMarkdown(text) {
  return DOMPurify.sanitize(marked.parse(text), PURIFY);
}
