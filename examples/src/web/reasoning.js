// The model's reasoning, shown folded above its answer: a <details class="reasoning">
// ("Reasoning") filled as a streamed answer's `reasoning` events arrive, and rebuilt from a
// stored message's `reasoning` parts. Plain text (never Markdown or HTML), dimmed by the
// stylesheet.

/** The text of a stored message's reasoning parts, blocks apart by a blank line. */
export function reasoningOfParts(parts = []) {
  return parts
    .filter((part) => part.type === 'reasoning' && part.text)
    .map((part) => part.text)
    .join('\n\n');
}

/**
 * Shows `text` as the reasoning of the message `article`, above its answer: the folded
 * block is made on first use and keeps whether the person opened it; no text removes it.
 */
export function setReasoning(article, text) {
  let box = article.querySelector(':scope > details.reasoning');
  if (!text) {
    box?.remove();
    return;
  }
  if (!box) {
    box = document.createElement('details');
    box.className = 'reasoning';
    const summary = document.createElement('summary');
    summary.textContent = 'Reasoning';
    const body = document.createElement('div');
    body.className = 'reasoning-text';
    box.append(summary, body);
    // Above the answer and above any tool calls, which come after the reasoning.
    (article.querySelector(':scope > .tools') ?? article.querySelector(':scope > .body')).before(box);
  }
  const body = box.querySelector('.reasoning-text');
  if (body.textContent !== text) body.textContent = text;
}
