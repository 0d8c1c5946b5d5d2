// The tools the model called on the way to its answer, shown above the answer (below any
// reasoning): one folded <details class="tool"> a call, its summary "Used tool NAME" ("running…"
// until the result arrives, "NAME failed: MESSAGE" for an error), the input and the output
// inside as indented JSON. Filled as a streamed answer's `tool_call` and `tool_result` events
// arrive, and rebuilt from a stored message's `tool_use` and `tool_result` parts. Plain text
// (never Markdown or HTML), dimmed by the stylesheet.
//
// A call is `{ id, name, input }`, with `result: { output, isError }` once it is answered,
// or `ended: true` when the answer ended before its result arrived.

/** A stored message's tool calls in order, each with its result (paired by id). */
export function toolsOfParts(parts) {
  const calls = [];
  for (const part of parts ?? []) {
    if (part.type === 'tool_use') calls.push({ id: part.id, name: part.name, input: part.input });
    else if (part.type === 'tool_result') answer(calls, part.tool_use_id, part.output, part.is_error);
  }
  return calls;
}

/** Adds a streamed `tool_call` or `tool_result` event to `calls`. */
export function addToolEvent(calls, event, data) {
  if (event === 'tool_call') calls.push({ id: data.id, name: data.name, input: data.input });
  else if (event === 'tool_result') answer(calls, data.id, data.output, data.is_error);
}

/** Marks the calls still waiting as ended without a result (the answer stopped or failed). */
export function endToolCalls(calls) {
  for (const call of calls) call.ended = !call.result;
}

/** Answers the first call with `id` still waiting; a result for no such call is dropped. */
function answer(calls, id, output, isError) {
  const call = calls.find((c) => c.id === id && !c.result);
  if (call) call.result = { output, isError: isError === true };
}

/**
 * Shows `calls` as the tools of the message `article`, above its answer: a line a call,
 * updated in place as results arrive (a line keeps whether the person opened it); no calls
 * removes them.
 */
export function setTools(article, calls) {
  let box = article.querySelector(':scope > .tools');
  if (!calls.length) {
    box?.remove();
    return;
  }
  if (!box) {
    box = document.createElement('div');
    box.className = 'tools';
    article.querySelector(':scope > .body').before(box);
  }
  calls.forEach((call, i) => {
    showCall(box.children[i] ?? box.appendChild(document.createElement('details')), call);
  });
  while (box.children.length > calls.length) box.lastElementChild.remove();
}

/** What a line shows: waiting, answered, failed, or ended without a result. */
const stateOf = (call) => (call.result ? (call.result.isError ? 'failed' : 'done') : call.ended ? 'ended' : 'running');

function showCall(line, call) {
  const state = stateOf(call);
  if (line.dataset.id === call.id && line.dataset.state === state) return;
  line.className = `tool ${state}`;
  line.dataset.id = call.id;
  line.dataset.state = state;

  const summary = document.createElement('summary');
  const name = span('tool-name', call.name);
  if (state === 'failed') {
    summary.append(span('tool-icon', '⚠', true), name, ` failed: ${clip(text(call.result.output))}`);
  } else {
    if (state === 'running') summary.append(span('tool-spinner', '', true));
    summary.append('Used tool ', name);
    if (state !== 'done') summary.append(' ', span('tool-state', state === 'running' ? 'running…' : 'no result'));
  }
  const [term, value, code] = {
    running: ['Output', 'Waiting for the tool…', false],
    done: ['Output', json(call.result?.output), true],
    failed: ['Error', text(call.result?.output), true],
    ended: ['Output', 'None: the answer ended before the tool returned.', false],
  }[state];
  const io = document.createElement('dl');
  io.className = 'tool-io';
  io.append(...field('Input', json(call.input), true), ...field(term, value, code));
  line.replaceChildren(summary, io);
}

function span(className, content, decoration = false) {
  const element = document.createElement('span');
  element.className = className;
  element.textContent = content;
  if (decoration) element.setAttribute('aria-hidden', 'true');
  return element;
}

/** A term and its value: in a <pre> when `code`, else as a sentence. */
function field(term, value, code) {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  const content = document.createElement(code ? 'pre' : 'p');
  content.textContent = value;
  dd.append(content);
  return [dt, dd];
}

/** Any JSON value, indented. */
const json = (value) => JSON.stringify(value ?? null, null, 2);

/** An error's message: a string as it is, anything else as JSON. */
const text = (value) => (typeof value === 'string' ? value : JSON.stringify(value ?? null));

/** At most 160 characters, for a summary line; the whole text is inside. */
const clip = (value) => (value.length > 160 ? `${value.slice(0, 159)}…` : value);
