// The sources an answer cites, listed under it: an <aside class="citations"> headed "Sources",
// one numbered line a citation: the words of the answer in quotes, then the passage of the
// document they rest on and where it is ("policy, characters 0–12"). Filled as a streamed
// answer's `citation` events arrive, and rebuilt from a stored message's text parts. Plain text
// (never Markdown or HTML), dimmed by the stylesheet.
//
// A citation is `{ cited_text, title, quote, location }` as the API gives it, `location` being
// `{ kind: 'characters' | 'pages' | 'chunks', document_index, start, end }` or absent.

/** A stored message's citations, in order (each text part's in turn). */
export function citationsOfParts(parts) {
  return (parts ?? []).flatMap((part) => (part.type === 'text' && part.citations) || []);
}

/** Shows `citations` under the answer of `article`; none removes them. */
export function setCitations(article, citations) {
  let box = article.querySelector(':scope > .citations');
  if (!citations.length) {
    box?.remove();
    return;
  }
  if (!box) {
    box = document.createElement('aside');
    box.className = 'citations';
    box.setAttribute('aria-label', 'Sources');
    const heading = document.createElement('p');
    heading.className = 'citations-heading';
    heading.textContent = 'Sources';
    box.append(heading, document.createElement('ol'));
    article.querySelector(':scope > .body').after(box);
  }
  const key = JSON.stringify(citations);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.querySelector('ol').replaceChildren(...citations.map(line));
}

function line(citation) {
  const item = document.createElement('li');
  const cited = document.createElement('q');
  cited.className = 'cited';
  cited.textContent = clip(citation.cited_text ?? '', 120);
  const source = document.createElement('span');
  source.className = 'source';
  source.textContent = [citation.title, where(citation.location)].filter(Boolean).join(', ');
  item.append(cited);
  if (citation.quote) {
    const quote = document.createElement('q');
    quote.className = 'quote';
    quote.textContent = clip(citation.quote, 240);
    item.append(' rests on ', quote);
  }
  if (source.textContent) item.append(' (', source, ')');
  return item;
}

/** Where in the document, as people say it: `characters 0–12`, `page 3`, `pages 3–4`. */
export function where(location) {
  if (!location) return '';
  const { kind, start, end } = location;
  const [one, many] = { characters: ['character', 'characters'], pages: ['page', 'pages'], chunks: ['chunk', 'chunks'] }[kind] ?? [
    kind,
    kind,
  ];
  if (end - start <= 1) return `${one} ${start}`;
  return `${many} ${start}–${kind === 'characters' ? end : end - 1}`;
}

/** At most `max` characters of `text` on one line, with an ellipsis when cut. */
function clip(text, max) {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
